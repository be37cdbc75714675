// Where pgelect reports what happens on its own threads: a campaign that
// cannot reach the database, a signal slot that threw, a release on
// destruction that failed.  Errors a caller can catch are thrown, not logged.
#pragma once

#include <functional>
#include <string_view>

namespace pgelect {

enum class LogLevel {
    warning,  // pgelect goes on and retries (e.g. the database is unreachable)
    error,    // something was lost or skipped (e.g. a slot threw, a release failed)
};
std::string_view to_string(LogLevel level) noexcept;

// Receives each message (one line, without a trailing newline).  Called from
// pgelect's threads, possibly concurrently; it must not block for long.  An
// exception it throws is swallowed.
using LogSink = std::function<void(LogLevel level, std::string_view message)>;

// Replaces the sink for the whole process; nullptr restores the default, which
// writes "pgelect: <message>" to stderr.  Thread-safe.
void set_log_sink(LogSink sink);

// Sends a message to the current sink (used by pgelect itself; available to
// code that wants its messages to go the same way).
void log(LogLevel level, std::string_view message);

}  // namespace pgelect
