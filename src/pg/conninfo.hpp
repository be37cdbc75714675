// Connection strings: parsed once, hardened with pgelect's defaults, and
// described without secrets for error messages.
#pragma once

#include <chrono>
#include <string>

namespace pgelect::detail {

struct ConnInfo {
    std::string conninfo;     // key=value string handed to libpq
    std::string description;  // "host=... port=... dbname=... user=..." without the password
    // Set on every new connection by one statement (ConnectionPool::connect),
    // not in the startup packet: connection poolers such as PgBouncer refuse
    // or drop startup `options`.  Zero: not set (transaction pooling, where a
    // session setting would not stay with the client).
    std::chrono::milliseconds statement_timeout{0};
};

struct ConnDefaults {
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds statement_timeout{5000};
    std::chrono::milliseconds tcp_user_timeout{10000};
    std::string application_name{"pgelect"};
};

// Parses a libpq connection string or URI (empty: libpq's PG* environment),
// keeps what the caller set and adds connect_timeout, TCP keepalives,
// tcp_user_timeout and application_name; the statement timeout is kept for
// the session setup.
// Throws InvalidArgumentError if libpq cannot parse it (the message never
// repeats the password).
ConnInfo make_conninfo(const std::string& dsn, const ConnDefaults& defaults);

// The DSN with any password replaced by "***", for messages.
std::string redact_dsn(const std::string& dsn);

}  // namespace pgelect::detail
