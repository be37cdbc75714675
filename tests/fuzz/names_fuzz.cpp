// Lock name, owner and table name validation (src/lock/names.hpp) on arbitrary
// bytes.  Contract: each check throws InvalidArgumentError and nothing else,
// with a printable message; it accepts
//   lock names and owners: 1..255 code points of valid UTF-8 without NUL
//     (utf8_length agrees, and gives -1 otherwise), checked against the
//     well-formed byte sequences of the Unicode standard (table 3-7);
//   table names: [schema.]table, each part [A-Za-z_][A-Za-z0-9_]*, schema at
//     most 63 and table at most 57 bytes; the quoted forms of an accepted name
//     are exactly its parts in double quotes, and its NOTIFY channel is
//     "pgelect_" and 16 hex digits, the same for "public.t" and "t".
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>

#include "fuzz_check.hpp"
#include "lock/names.hpp"
#include "pgelect/errors.hpp"

using pgelect_fuzz::check;
using pgelect_fuzz::violated;

namespace {

// Code points in `s`, or -1 unless it is well-formed UTF-8 without NUL.
long reference_utf8_length(const std::string& s) {
    long count = 0;
    std::size_t i = 0;
    auto in = [&](std::size_t k, unsigned lo, unsigned hi) {
        if (i + k >= s.size()) return false;
        const unsigned b = static_cast<unsigned char>(s[i + k]);
        return b >= lo && b <= hi;
    };
    while (i < s.size()) {
        const unsigned b = static_cast<unsigned char>(s[i]);
        std::size_t len = 0;
        if (b >= 0x01 && b <= 0x7F) {
            len = 1;
        } else if (b >= 0xC2 && b <= 0xDF) {
            len = in(1, 0x80, 0xBF) ? 2 : 0;
        } else if (b == 0xE0) {
            len = in(1, 0xA0, 0xBF) && in(2, 0x80, 0xBF) ? 3 : 0;
        } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
            len = in(1, 0x80, 0xBF) && in(2, 0x80, 0xBF) ? 3 : 0;
        } else if (b == 0xED) {
            len = in(1, 0x80, 0x9F) && in(2, 0x80, 0xBF) ? 3 : 0;
        } else if (b == 0xF0) {
            len = in(1, 0x90, 0xBF) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF) ? 4 : 0;
        } else if (b >= 0xF1 && b <= 0xF3) {
            len = in(1, 0x80, 0xBF) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF) ? 4 : 0;
        } else if (b == 0xF4) {
            len = in(1, 0x80, 0x8F) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF) ? 4 : 0;
        }
        if (len == 0) return -1;
        i += len;
        ++count;
    }
    return count;
}

bool is_identifier(const std::string& s, std::size_t max_len) {
    if (s.empty() || s.size() > max_len) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!letter && (i == 0 || c < '0' || c > '9')) return false;
    }
    return true;
}

std::string show(const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
        char buf[8];
        std::snprintf(buf, sizeof buf, c >= 0x20 && c < 0x7f && c != '\\' ? "%c" : "\\x%02x", c);
        out += buf;
    }
    return "\"" + out + "\"";
}

void check_message(const pgelect::InvalidArgumentError& e, const std::string& input) {
    const std::string what = e.what();
    bool printable = !what.empty() && what.size() < 1024;
    for (unsigned char c : what) printable = printable && c >= 0x20 && c < 0x7f;
    check(printable, "error messages are short printable ASCII", show(input) + ": " + show(what));
}

// Whether `validate` accepts `s`; any exception but InvalidArgumentError aborts.
template <class Validate>
bool accepts(const char* what, Validate validate, const std::string& s) {
    try {
        validate(s);
        return true;
    } catch (const pgelect::InvalidArgumentError& e) {
        check_message(e, s);
        return false;
    } catch (const std::exception& e) {
        violated(what, show(s) + ": " + e.what());
    } catch (...) {
        violated(what, show(s));
    }
}

void check_text_rules(const std::string& s) {
    const long expected = reference_utf8_length(s);
    const long length = pgelect::detail::utf8_length(s);
    check(length == expected, "utf8_length counts code points of valid UTF-8, else -1",
          show(s) + ": " + std::to_string(length) + ", expected " + std::to_string(expected));
    const bool valid = expected >= 1 && expected <= 255;
    check(accepts("validate_lock_name throws only InvalidArgumentError",
                  pgelect::detail::validate_lock_name, s) == valid,
          valid ? "a valid lock name is accepted" : "an invalid lock name is refused", show(s));
    check(accepts("validate_owner throws only InvalidArgumentError",
                  pgelect::detail::validate_owner, s) == valid,
          valid ? "a valid owner is accepted" : "an invalid owner is refused", show(s));
}

void check_table_rules(const std::string& s) {
    const std::size_t dot = s.find('.');
    const std::string schema = dot == std::string::npos ? "" : s.substr(0, dot);
    const std::string table = dot == std::string::npos ? s : s.substr(dot + 1);
    const bool valid =
        (dot == std::string::npos || is_identifier(schema, 63)) && is_identifier(table, 57);
    pgelect::detail::TableName name;
    const bool accepted = accepts(
        "parse_table_name throws only InvalidArgumentError",
        [&](const std::string& text) { name = pgelect::detail::parse_table_name(text); }, s);
    check(accepted == valid,
          valid ? "a valid table name is accepted" : "an invalid table name is refused", show(s));
    if (!accepted) return;

    check(name.schema == schema && name.table == table, "the parts are split at the dot", show(s));
    check(name.display() == s, "display() gives the name back", show(s));
    const std::string prefix = schema.empty() ? "" : "\"" + schema + "\".";
    check(name.quoted() == prefix + "\"" + table + "\"", "quoted() double-quotes each part",
          show(name.quoted()));
    const std::string sequence = name.quoted_sequence("_fence");
    check(sequence == prefix + "\"" + table + "_fence\"", "quoted_sequence() appends the suffix",
          show(sequence));
    check(table.size() + 6 <= 63, "the longest sequence name fits an identifier", show(s));
    check(name.sequence_literal("_rvn") == "'" + name.quoted_sequence("_rvn") + "'",
          "sequence_literal() single-quotes the sequence", show(s));
    const std::string channel = name.channel();
    bool hex = channel.size() == 24 && channel.rfind("pgelect_", 0) == 0;
    for (std::size_t i = 8; hex && i < channel.size(); ++i) {
        hex = (channel[i] >= '0' && channel[i] <= '9') || (channel[i] >= 'a' && channel[i] <= 'f');
    }
    check(hex, "channel() is pgelect_ and 16 hex digits", show(channel));
    if (schema == "public") {
        check(channel == pgelect::detail::parse_table_name(table).channel(),
              "public.t and t share a channel", show(s));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string s(reinterpret_cast<const char*>(data), size);
    check_text_rules(s);
    check_table_rules(s);
    return 0;
}
