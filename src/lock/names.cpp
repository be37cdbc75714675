#include "lock/names.hpp"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <random>

#include "pgelect/errors.hpp"

namespace pgelect::detail {
namespace {

constexpr std::size_t kMaxIdentifier = 63;
// "_fence" is the longest suffix; the table part must leave room for it.
constexpr std::size_t kMaxTable = kMaxIdentifier - 6;

bool is_identifier(const std::string& s, std::size_t max_len) {
    if (s.empty() || s.size() > max_len) return false;
    auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
    if (!alpha(s[0])) return false;
    for (char c : s) {
        if (!alpha(c) && !(c >= '0' && c <= '9')) return false;
    }
    return true;
}

std::string printable(const std::string& s) {
    std::string out;
    for (unsigned char c : s.substr(0, 80)) {
        if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        }
    }
    if (s.size() > 80) out += "...";
    return out;
}

}  // namespace

std::string default_identity() {
    char host[256] = {0};
    if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "unknown");
    std::random_device rd;
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, "%08x", rd());
    return std::string(host) + "-" + std::to_string(getpid()) + "-" + suffix;
}

std::string TableName::display() const { return schema.empty() ? table : schema + "." + table; }

std::string TableName::quoted() const {
    std::string t = "\"" + table + "\"";
    return schema.empty() ? t : "\"" + schema + "\"." + t;
}

std::string TableName::quoted_sequence(const char* suffix) const {
    std::string s = "\"" + table + suffix + "\"";
    return schema.empty() ? s : "\"" + schema + "\"." + s;
}

std::string TableName::sequence_literal(const char* suffix) const {
    return "'" + quoted_sequence(suffix) + "'";
}

std::string TableName::regclass_literal() const { return "'" + quoted() + "'"; }

std::string TableName::channel() const {
    std::uint64_t h = 1469598103934665603ULL;  // FNV-1a: stable across processes and versions
    // "public.locks" and "locks" name the same table under the default search_path.
    const std::string key = schema == "public" ? table : display();
    for (unsigned char c : key) {
        h ^= c;
        h *= 1099511628211ULL;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "pgelect_%016llx", static_cast<unsigned long long>(h));
    return buf;
}

TableName parse_table_name(const std::string& name) {
    TableName t;
    auto dot = name.find('.');
    if (dot == std::string::npos) {
        t.table = name;
    } else {
        t.schema = name.substr(0, dot);
        t.table = name.substr(dot + 1);
    }
    const std::string rule =
        " (expected [schema.]table, each part [A-Za-z_][A-Za-z0-9_]*, schema at most 63 and table at "
        "most 57 characters)";
    if (dot != std::string::npos && !is_identifier(t.schema, kMaxIdentifier)) {
        throw InvalidArgumentError("invalid lock table name \"" + printable(name) +
                                   "\": bad schema part" + rule);
    }
    if (!is_identifier(t.table, kMaxIdentifier)) {
        throw InvalidArgumentError("invalid lock table name \"" + printable(name) + "\"" + rule);
    }
    if (t.table.size() > kMaxTable) {
        throw InvalidArgumentError("invalid lock table name \"" + printable(name) +
                                   "\": the table part is " + std::to_string(t.table.size()) +
                                   " characters; at most 57 leave room for the sequence " +
                                   "\"<table>_fence\" within PostgreSQL's 63-byte identifiers");
    }
    return t;
}

long utf8_length(const std::string& s) {
    long count = 0;
    std::size_t i = 0;
    const std::size_t n = s.size();
    while (i < n) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        std::size_t len;
        std::uint32_t cp;
        if (c == 0) return -1;
        if (c < 0x80) {
            len = 1;
            cp = c;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return -1;
        }
        if (i + len > n) return -1;
        for (std::size_t k = 1; k < len; ++k) {
            unsigned char cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) return -1;
            cp = (cp << 6) | (cc & 0x3F);
        }
        // Overlong forms, surrogates and values past U+10FFFF are invalid.
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
            return -1;
        }
        i += len;
        ++count;
    }
    return count;
}

namespace {
void validate_text(const std::string& what, const std::string& value) {
    if (value.empty()) throw InvalidArgumentError("invalid " + what + ": it is empty");
    if (value.find('\0') != std::string::npos) {
        throw InvalidArgumentError("invalid " + what + " \"" + printable(value) +
                                   "\": it contains a NUL byte");
    }
    long len = utf8_length(value);
    if (len < 0) {
        throw InvalidArgumentError("invalid " + what + " \"" + printable(value) +
                                   "\": it is not valid UTF-8");
    }
    if (len > 255) {
        throw InvalidArgumentError("invalid " + what + " \"" + printable(value) + "\": it has " +
                                   std::to_string(len) + " characters, at most 255 are allowed");
    }
}
}  // namespace

void validate_lock_name(const std::string& name) { validate_text("lock name", name); }
void validate_owner(const std::string& owner) { validate_text("owner", owner); }

}  // namespace pgelect::detail
