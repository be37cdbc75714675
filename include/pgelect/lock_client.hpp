// The lease-lock client: pglock's protocol on PostgreSQL, tightened.
#pragma once

#include <boost/signals2/signal.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <memory>
#include <stop_token>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "pgelect/errors.hpp"
#include "pgelect/lock.hpp"
#include "pgelect/options.hpp"

namespace pgelect {

namespace detail {
class ClientCore;
struct ClientFactory;
}

// One renewal statement (all held locks of a client, or one manual heartbeat).
struct RenewalReport {
    std::vector<std::string> names;          // the locks it tried to renew
    std::chrono::steady_clock::duration elapsed{};
    bool ok = false;                          // false: outcome unknown, retried
    std::optional<ErrorKind> error{};         // why it failed, if it did
    std::vector<std::string> still_held{};    // when ok: the locks it renewed
};

// A write the server answered with success and a warning: a synchronous
// replication wait cancelled (by an operator or the statement timeout) after
// the local commit, so the write may be lost at a failover.  pgelect counts it
// as not done: an acquisition is not taken (and released again), a renewal
// does not extend the lease.
struct UnknownOutcome {
    std::string name;       // the lock
    std::string operation;  // "acquire", "renew", "release" or "set_data"
    std::string warning;    // the server's message, on one line
};

// What the server says about its replication (pgelect status --ha).
struct StandbyInfo {
    std::string name;        // application_name ("" if the role may not see it)
    std::string state;       // streaming, catchup, ...
    std::string sync_state;  // sync, quorum, potential or async
};
struct ReplicationInfo {
    std::string server;                    // dbname, host, port, user (never the password)
    bool standby = false;                  // the server is in recovery (read-only)
    std::optional<std::int64_t> timeline;  // the primary's current timeline
    std::string synchronous_commit;        // of pgelect's session
    std::string synchronous_standby_names;
    std::vector<StandbyInfo> standbys;     // streaming from this server
    // Why a promotion may lose writes this server acknowledged (empty: it
    // cannot, as far as the server knows): standbys that do not confirm
    // commits, or commits that do not wait for them.
    std::string risk() const;
};

enum class AttemptResult { acquired, busy, error };
std::string_view to_string(AttemptResult result) noexcept;

// A LockClient acquires, renews and releases lease locks kept in one table.
// All methods may be called from any thread at the same time.
//
// It owns a pool of database connections (opened on demand), one renewal
// thread that renews every held lock in one statement per tick, one deadline
// timer, and one LISTEN connection that wakes waiting contenders when a lock is
// released.  Nothing connects at construction: an unreachable database shows up
// as UnavailableError on the first call.  The destructor releases every lock
// still held and joins its threads.
class LockClient {
public:
    // dsn: a libpq connection string or URI; empty uses libpq's PG* environment.
    // Throws InvalidArgumentError for bad options.
    explicit LockClient(std::string dsn, LockClientOptions options = {});
    ~LockClient();
    LockClient(const LockClient&) = delete;
    LockClient& operator=(const LockClient&) = delete;

    // Creates the table, its two sequences and its epoch table (the timelines
    // it has been used on, see docs/ha.md).  FailedPreconditionError if the
    // table exists.
    void create_table();
    // Creates whatever is missing; adds pgelect's columns to a pglock table in place.
    void try_create_table();
    // Drops the table, its sequences and its epoch table (no error if missing).
    void drop_table();
    // After moving the table to another cluster in a way that resets the
    // server's timeline or the token sequence (pg_upgrade, dump and restore,
    // logical migration): moves the fencing tokens above every token the
    // table holds, `above`, and every token its sequence and recorded
    // timelines may have handed out, and makes the current timeline the
    // table's only one.  Returns the token the next ones will exceed.
    std::int64_t bump_epoch(std::int64_t above = 0);

    // Blocks until the lock is held, the stop token is triggered (then
    // NotAcquiredError) or, with fail_if_locked, returns at once.  Waiting costs
    // one SELECT per retry_interval; a release anywhere wakes it at once.
    Lock acquire(const std::string& name, const AcquireOptions& options = {},
                 std::stop_token stop = {});
    // acquire() with fail_if_locked: NotAcquiredError at once if the lock is held.
    Lock try_acquire(const std::string& name, const AcquireOptions& options = {});

    // Reads one lock row without acquiring it.  NotFoundError if there is none.
    LockInfo get(const std::string& name);
    // Every row of the table, ordered by name.
    std::vector<LockInfo> get_all();
    // The server's replication as it reports it (one statement).
    ReplicationInfo replication_info();

    // Renews one held lock now (also when automatic heartbeats are off).
    // AlreadyReleasedError if it is released or was taken over.
    void heartbeat(Lock& lock);

    // pglock's Do: acquires the lock, calls fn(stop_token) where the token fires
    // when the lock is lost or `stop` is triggered, and releases the lock when
    // fn returns or throws.  Returns what fn returns.  With fail_if_locked, a
    // held lock throws NotAcquiredError and fn is never called.
    template <class Fn>
    auto with_lock(const std::string& name, Fn&& fn, const AcquireOptions& options = {},
                   std::stop_token stop = {}) -> std::invoke_result_t<Fn, std::stop_token>;

    // For metrics.  renewal_finished runs on the renewal thread (or the thread
    // calling heartbeat()); acquire_attempted on the thread calling acquire(),
    // once per conditional upsert.  Connect slots before acquiring locks; slots
    // must be quick and must not throw.
    boost::signals2::signal<void(const RenewalReport&)> renewal_finished;
    boost::signals2::signal<void(const std::string& name, AttemptResult)> acquire_attempted;
    // On the thread that made the write, once per lock it concerned.
    boost::signals2::signal<void(const UnknownOutcome&)> outcome_unknown;
    // The server's timeline (it grows with every promotion, docs/ha.md), as
    // each acquisition attempt and each renewal statement read it; on the
    // thread that ran the statement.
    boost::signals2::signal<void(std::int64_t timeline)> timeline_seen;

    const LockClientOptions& options() const;
    // The owner identity this client writes.
    const std::string& owner() const;

private:
    friend struct detail::ClientFactory;  // builds clients over other stores (tests)
    explicit LockClient(std::shared_ptr<detail::ClientCore> core);
    void connect_hooks();

    std::shared_ptr<detail::ClientCore> core_;
};

// The CREATE statements for a lock table, exactly what create_table() runs.
// Throws InvalidArgumentError for an invalid table name.
std::string schema_sql(const std::string& table = "locks");

// --- implementation of the template -------------------------------------

namespace detail {
// Fires `target` when either `a` or `b` fires, for as long as it lives.
class StopLink {
public:
    StopLink(std::stop_token a, std::stop_token b);
    std::stop_token token() const { return source_.get_token(); }

private:
    std::stop_source source_;
    std::stop_callback<std::function<void()>> a_;
    std::stop_callback<std::function<void()>> b_;
};
}  // namespace detail

template <class Fn>
auto LockClient::with_lock(const std::string& name, Fn&& fn, const AcquireOptions& options,
                           std::stop_token stop) -> std::invoke_result_t<Fn, std::stop_token> {
    Lock lock = acquire(name, options, stop);
    detail::StopLink link(lock.lost_token(), stop);
    struct Releaser {
        Lock& lock;
        ~Releaser() {
            if (!lock.is_released()) {
                try {
                    lock.release();
                } catch (...) {
                    // Lost meanwhile; the handle is marked released either way.
                }
            }
        }
    } releaser{lock};
    return std::forward<Fn>(fn)(link.token());
}

}  // namespace pgelect
