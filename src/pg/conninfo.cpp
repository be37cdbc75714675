#include "pg/conninfo.hpp"

#include <libpq-fe.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <regex>

#include "pgelect/errors.hpp"

namespace pgelect::detail {
namespace {

std::string quote_value(const std::string& v) {
    std::string out = "'";
    for (char c : v) {
        if (c == '\'' || c == '\\') out += '\\';
        out += c;
    }
    return out + "'";
}

// Hides every quoted token of a libpq parse error but libpq's own punctuation
// ("=", "]", ":", "/"): any other token may be (part of) the password.
std::string hide_quoted(const std::string& msg) {
    std::string out;
    std::size_t i = 0;
    while (i < msg.size()) {
        const auto open = msg.find('"', i);
        if (open == std::string::npos) {
            out.append(msg, i, std::string::npos);
            break;
        }
        out.append(msg, i, open - i + 1);
        const auto close = msg.find('"', open + 1);
        const std::string token =
            msg.substr(open + 1, close == std::string::npos ? std::string::npos : close - open - 1);
        const bool punctuation =
            token.size() == 1 && std::string("=]:/").find(token[0]) != std::string::npos;
        out += (punctuation ? token : "***") + "\"";
        if (close == std::string::npos) break;
        i = close + 1;
    }
    return out;
}

std::string seconds_ceil(std::chrono::milliseconds d) {
    return std::to_string((d.count() + 999) / 1000);
}

}  // namespace

std::string redact_dsn(const std::string& dsn) {
    // key=value form: password=secret, password='sec ret', password=se\ cret, or an
    // unterminated quote (which runs to the end).
    static const std::regex kv(R"((^|\s)(password\s*=\s*)('([^'\\]|\\.)*'?|(\\.|[^\s'\\])+))",
                               std::regex::icase);
    // URI form: scheme://user:secret@host and ?password=secret
    static const std::regex uri_user(R"((://[^:/@]*:)[^@/]*@)");
    static const std::regex uri_param(R"(([?&]password=)[^&]*)", std::regex::icase);
    std::string out = std::regex_replace(dsn, uri_user, "$1***@");
    out = std::regex_replace(out, uri_param, "$1***");
    return std::regex_replace(out, kv, "$1$2***");
}

ConnInfo make_conninfo(const std::string& dsn, const ConnDefaults& defaults) {
    char* err = nullptr;
    std::unique_ptr<PQconninfoOption, void (*)(PQconninfoOption*)> opts(
        PQconninfoParse(dsn.c_str(), &err), PQconninfoFree);
    if (!opts) {
        std::string msg = err ? err : "out of memory";
        if (err) PQfreemem(err);
        while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
        // libpq quotes the offending token, which may be (part of) the password:
        // when the string holds one, the token is not repeated.
        static const std::regex secret(R"(password|://[^/@]*:[^/@]*@)", std::regex::icase);
        if (std::regex_search(dsn, secret)) msg = hide_quoted(msg);
        throw InvalidArgumentError("invalid connection string \"" + redact_dsn(dsn) + "\": " + msg);
    }
    std::map<std::string, std::string> set;
    for (PQconninfoOption* o = opts.get(); o->keyword != nullptr; ++o) {
        if (o->val != nullptr) set[o->keyword] = o->val;
    }
    auto add_default = [&](const char* key, const std::string& value) {
        if (!set.count(key) && std::getenv(("PG" + std::string(key)).c_str()) == nullptr) {
            set[key] = value;
        }
    };
    // PGCONNECT_TIMEOUT is libpq's environment name for connect_timeout.
    if (!set.count("connect_timeout") && std::getenv("PGCONNECT_TIMEOUT") == nullptr) {
        set["connect_timeout"] = seconds_ceil(defaults.connect_timeout);
    }
    add_default("keepalives", "1");
    add_default("keepalives_idle", "5");
    add_default("keepalives_interval", "2");
    add_default("keepalives_count", "3");
    add_default("tcp_user_timeout", std::to_string(defaults.tcp_user_timeout.count()));
    if (!set.count("application_name") && std::getenv("PGAPPNAME") == nullptr) {
        set["application_name"] = defaults.application_name;
    }
    // Several hosts (a primary and its standbys): only the one that takes
    // writes will do, so that a promotion is followed (docs/ha.md).
    const bool several_hosts = (set.count("host") && set["host"].find(',') != std::string::npos) ||
                               (set.count("hostaddr") && set["hostaddr"].find(',') != std::string::npos);
    if (several_hosts && !set.count("target_session_attrs") &&
        std::getenv("PGTARGETSESSIONATTRS") == nullptr) {
        set["target_session_attrs"] = "read-write";
    }
    ConnInfo info;
    for (const auto& [k, v] : set) {
        if (!info.conninfo.empty()) info.conninfo += ' ';
        info.conninfo += k + "=" + quote_value(v);
        if (k == "host" || k == "hostaddr" || k == "port" || k == "dbname" || k == "user") {
            if (!info.description.empty()) info.description += ' ';
            info.description += k + "=" + v;
        }
    }
    if (info.description.empty()) info.description = "libpq defaults (PG* environment)";
    info.statement_timeout = defaults.statement_timeout;
    return info;
}

}  // namespace pgelect::detail
