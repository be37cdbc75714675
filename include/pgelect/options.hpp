// Options of the lease-lock client, as plain structs with their defaults.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>

namespace pgelect {

struct LockObservation;

using Duration = std::chrono::milliseconds;

// Timing of a lease.  The rules, checked by validate_timing():
//   0 < heartbeat_interval <= lease_duration / 2  (or heartbeat_interval == 0: no automatic
//                                                   renewals, see below)
//   heartbeat_interval < renew_deadline < lease_duration
//   0 < retry_interval
// Every client of one lock table must use the same lease_duration: a waiter
// takes over a lock whose record version has not changed for lease_duration of
// the waiter's own steady clock.
struct LeaseTiming {
    // How long a holder that stopped renewing keeps others out.  Default 15 s.
    // Shorter means faster failover after a crash, and less tolerance for a slow database.
    Duration lease_duration{std::chrono::seconds(15)};
    // How long after the start of its last successful renewal a holder still
    // trusts its lease.  Past it the lock is reported lost on a local timer,
    // even while a renewal statement is still running.  Default 10 s.
    Duration renew_deadline{std::chrono::seconds(10)};
    // How often held locks are renewed.  0 turns automatic renewals off: the
    // lock is then valid until renew_deadline after its acquisition or after the
    // last manual LockClient::heartbeat().  Default 2 s.
    Duration heartbeat_interval{std::chrono::seconds(2)};
    // How often a waiting contender re-reads a lock it cannot take.  Releases
    // wake contenders at once (LISTEN/NOTIFY); this poll bounds the wait when a
    // notification is missed and the crash-failover time (lease + retry).
    // Default 500 ms.  Each poll is one SELECT: no writes.
    Duration retry_interval{std::chrono::milliseconds(500)};
};

// Throws InvalidArgumentError naming the broken rule.
void validate_timing(const LeaseTiming& timing);

// How the connection string reaches PostgreSQL (docs/ha.md#pgbouncer).
enum class Pooling {
    // Directly, or through a pooler in session mode (PgBouncer pool_mode =
    // session): one server connection per client connection.  The default.
    session,
    // Through a pooler in transaction mode (PgBouncer pool_mode = transaction):
    // each statement may run on another server connection.  pgelect then sends
    // unnamed statements (still one round trip each), sets no session settings
    // (give the role its statement_timeout: ALTER ROLE ... SET), and LISTENs
    // only on listen_dsn.
    transaction,
};

struct LockClientOptions {
    // Lock table, optionally schema-qualified ("locks", "ops.leases").
    // [A-Za-z_][A-Za-z0-9_]* per part, at most 57 characters for the table part
    // so that the derived sequence names (<table>_rvn, <table>_fence) fit
    // PostgreSQL's 63-byte identifier limit.  Default "locks" (pglock's).
    std::string table{"locks"};
    // Identity written to the owner column.  Empty: "<hostname>-<pid>-<random>",
    // unique per client.  At most 255 characters.
    std::string owner{};
    LeaseTiming timing{};
    // Connections for acquire/release/read calls (renewals and LISTEN have one
    // dedicated connection each).  Callers beyond this many wait for a free one.
    std::size_t pool_size{4};
    // statement_timeout set on every connection.  Default 5 s; must be positive.
    // A statement still unanswered 1 s after it has its connection closed
    // (UnavailableError), so a dead server or network never blocks a call longer.
    Duration statement_timeout{std::chrono::seconds(5)};
    // statement_timeout of the renewal connection.  0 (default): two thirds of
    // (renew_deadline - heartbeat_interval - retry pause), at most
    // statement_timeout.  A renewal unanswered after this plus a grace of a
    // quarter of it (at most 1 s) has its connection closed and is retried, so
    // the rule
    //   heartbeat_interval + renewal_timeout + grace + retry pause < renew_deadline
    // (retry pause: heartbeat_interval / 4 within [20 ms, 1 s]) guarantees that
    // a renewal whose reply was lost is retried before the renew deadline.
    // Timings breaking it (the client's, or a lock's or elector's own) are
    // refused with InvalidArgumentError.
    Duration renewal_timeout{0};
    // libpq connect_timeout (whole seconds, minimum 2).  Default 5 s.
    Duration connect_timeout{std::chrono::seconds(5)};
    // How many times a statement that hit a serialization failure or deadlock
    // is retried before SerializationError reaches the caller.  Default 10.
    int serialization_retries{10};
    // See Pooling.  Default session (also right for a direct connection).
    Pooling pooling{Pooling::session};
    // Where the LISTEN connection (which wakes waiters at a release) goes:
    // empty: the client's DSN, or, with Pooling::transaction, no LISTEN at all
    // (waiters then poll every retry_interval).  With transaction pooling give
    // a direct or session-pooled DSN of the same database.
    std::string listen_dsn{};
};

// Throws InvalidArgumentError naming the broken rule.
void validate_options(const LockClientOptions& options);

struct AcquireOptions {
    // Payload stored in the data column (any bytes).  Set on a new row; on an
    // existing (free) row it replaces the old data only if replace_data is set.
    std::optional<std::string> data{};
    // Replace the data of an existing row with `data` (an empty optional clears it).
    bool replace_data{false};
    // On release keep the row (free, data kept) instead of deleting it.
    bool keep_on_release{false};
    // Do not wait: throw NotAcquiredError at once if the lock is held.
    bool fail_if_locked{false};
    // Per-lock timing; the client's timing when empty.
    std::optional<LeaseTiming> timing{};
    // Owner written for this lock; the client's owner when empty.
    std::optional<std::string> owner{};
    // Called on the acquiring thread after each read of the row while waiting
    // (also right after a failed attempt), e.g. to follow who holds the lock.
    // A release or acquisition elsewhere triggers a read at once (NOTIFY).
    std::function<void(const LockObservation&)> observer{};
};

}  // namespace pgelect
