// pgelect error hierarchy.
//
// Every failure pgelect reports is a pgelect::Error (or one of the subclasses
// below) carrying an ErrorKind.  The kinds keep the distinctions of the Go
// library pglock: callers switch on kind() or catch the subclass they care
// about.  Messages name the operation, the lock and the table involved and never
// contain a password from the connection string.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace pgelect {

enum class ErrorKind {
    not_acquired,         // the lock is held by someone else (or the wait was cancelled)
    already_released,     // the lock was released, lost or taken over
    not_found,            // no row for that lock name
    unavailable,          // the database could not be reached or did not answer in time
    failed_precondition,  // e.g. the lock table is missing or already exists
    serialization,        // serialization failure / deadlock that survived the internal retries
    invalid_argument,     // bad name, table name or option; no SQL was run
    leadership_lost,      // a fenced operation found that the lease changed hands
    other,
};

// Short stable name of a kind ("not_acquired", ...), for logs and metrics.
std::string_view to_string(ErrorKind kind) noexcept;

class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
    ErrorKind kind() const noexcept { return kind_; }

private:
    ErrorKind kind_;
};

#define PGELECT_DEFINE_ERROR(Name, kind_value)                                          \
    class Name : public Error {                                                        \
    public:                                                                            \
        explicit Name(const std::string& message) : Error(ErrorKind::kind_value, message) {} \
    };

PGELECT_DEFINE_ERROR(NotAcquiredError, not_acquired)
PGELECT_DEFINE_ERROR(AlreadyReleasedError, already_released)
PGELECT_DEFINE_ERROR(NotFoundError, not_found)
PGELECT_DEFINE_ERROR(UnavailableError, unavailable)
PGELECT_DEFINE_ERROR(FailedPreconditionError, failed_precondition)
PGELECT_DEFINE_ERROR(SerializationError, serialization)
PGELECT_DEFINE_ERROR(InvalidArgumentError, invalid_argument)
PGELECT_DEFINE_ERROR(LeadershipLostError, leadership_lost)

#undef PGELECT_DEFINE_ERROR

}  // namespace pgelect
