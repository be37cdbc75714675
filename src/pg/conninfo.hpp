// Connection strings: parsed once, hardened with pgelect's defaults, and
// described without secrets for error messages.
#pragma once

#include <chrono>
#include <string>

namespace pgelect::detail {

struct ConnInfo {
    std::string conninfo;     // key=value string handed to libpq
    std::string description;  // "host=... port=... dbname=... user=..." without the password
};

struct ConnDefaults {
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds statement_timeout{5000};
    std::chrono::milliseconds tcp_user_timeout{10000};
    std::string application_name{"pgelect"};
};

// Parses a libpq connection string or URI (empty: libpq's PG* environment),
// keeps what the caller set and adds connect_timeout, TCP keepalives,
// tcp_user_timeout, application_name and a statement_timeout in `options`.
// Throws InvalidArgumentError if libpq cannot parse it (the message never
// repeats the password).
ConnInfo make_conninfo(const std::string& dsn, const ConnDefaults& defaults);

// The DSN with any password replaced by "***", for messages.
std::string redact_dsn(const std::string& dsn);

}  // namespace pgelect::detail
