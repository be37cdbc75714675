// Where the lock protocol keeps its rows: one method per statement.  The real
// store runs each on PostgreSQL (PgStore); tests use an in-memory one.  The
// protocol (ClientCore, Renewer) decides what to send and when; the store only
// runs it and reports what the database answered.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "lock/names.hpp"
#include "pgelect/errors.hpp"
#include "pgelect/lock.hpp"
#include "pgelect/lock_client.hpp"
#include "pgelect/options.hpp"

namespace pgelect::detail {

// One lock of a batched renewal.
struct RenewItem {
    std::string name;
    std::int64_t fencing_token;
    std::string owner;
};

// A lock the renewal found still held by its acquisition (name, fencing
// token), with its new version, or none when the row was locked by another
// transaction and skipped: the outcome for that lock is unknown.
struct Renewed {
    std::string name;
    std::int64_t fencing_token;
    std::optional<std::int64_t> record_version_number;
};

// What a contender reads of a lock row while it waits.
struct PolledRow {
    std::optional<std::int64_t> rvn;  // empty: the lock is free
    std::string owner;
    std::optional<std::int64_t> fencing_token;
};

// A successful acquisition.
struct Taken {
    std::int64_t rvn;
    std::int64_t fencing_token;
    std::string data;  // the row's data after the acquisition
};

// What one acquisition attempt came to: taken, held by someone else (nothing
// taken, no quarantine), or refused for the failover quarantine.
struct TakeOutcome {
    TakeOutcome() = default;
    TakeOutcome(std::optional<Taken> t) : taken(std::move(t)) {}  // NOLINT: implicit on purpose
    std::optional<Taken> taken;
    // After a promotion: how long until the server's new timeline may be
    // taken on (zero: no quarantine).
    std::chrono::milliseconds quarantine{0};
};

// Which connection a renewal runs on: the renewal thread has its own, so it
// never queues behind acquire/release calls.
enum class RenewVia { pool, renewal_connection };

// "<operation> lock "<name>" on table <table>", the context of every error message.
inline std::string lock_context(const char* operation, const std::string& name,
                                const TableName& table) {
    return std::string(operation) + " lock \"" + name + "\" on table " + table.display();
}

// Every method may be called from any thread.  Failures are pgelect::Error
// (UnavailableError when the outcome is unknown or the database unreachable,
// FailedPreconditionError for a missing table, ...), with messages naming the
// operation, the lock and the table.
class LockStore {
public:
    virtual ~LockStore() = default;

    virtual void create_table() = 0;
    virtual void try_create_table() = 0;
    virtual void drop_table() = 0;
    // See LockClient::bump_epoch.
    virtual std::int64_t bump_epoch(std::int64_t above) {
        (void)above;
        throw Error(ErrorKind::failed_precondition, "bump-epoch: not supported by this store");
    }

    // The conditional upsert: takes `name` for `owner` if it is free, missing,
    // or still carries `stale_rvn`, unless the failover quarantine is on.  Uses
    // options.data and options.replace_data.  Nothing taken if the lock is
    // held.  Notifies 'A' + name on success.
    virtual TakeOutcome try_take(const std::string& name, const std::string& owner,
                                          const AcquireOptions& options,
                                          std::optional<std::int64_t> stale_rvn) = 0;
    // Reads the rows of `names` in one statement (a name without a row is
    // missing from the answer).
    virtual std::unordered_map<std::string, PolledRow> poll(const std::vector<std::string>& names) = 0;
    // Renews every item still held by (fencing token, owner) in one statement,
    // skipping rows locked by another transaction; returns every item still
    // held, with its new record version (none if skipped).
    virtual std::vector<Renewed> renew(const std::vector<RenewItem>& items, RenewVia via) = 0;
    // Deletes the row (or frees it with `keep`) if this acquisition still
    // holds it, notifying 'R' + name.  False if it did not hold it.
    virtual bool release(const std::string& name, std::int64_t fencing_token,
                         const std::string& owner, bool keep) = 0;
    // Replaces the data if this acquisition still holds the row.  False if not.
    virtual bool set_data(const std::string& name, std::int64_t fencing_token,
                          const std::string& owner, const std::string& data) = 0;
    // One row; NotFoundError if there is none.
    virtual LockInfo get(const std::string& name) = 0;
    // Every row, ordered by name.
    virtual std::vector<LockInfo> get_all() = 0;
    // The server's replication (a store without a server has none).
    virtual ReplicationInfo replication_info() { return {}; }

    // Notifications about other clients (LISTEN/NOTIFY on the real store).
    // `payload` is 'R' + name (released) or 'A' + name (acquired);
    // `reconnected` runs whenever notifications may have been missed.  Set once,
    // before the first ensure_listening(); called on the store's own thread.
    struct Listeners {
        std::function<void(const std::string& payload)> notification;
        std::function<void()> reconnected;
        // A write of these locks succeeded with a warning (e.g. a cancelled
        // synchronous-replication wait): the store reports it as not done.
        // Called on the thread that made the write.
        std::function<void(const char* operation, const std::vector<std::string>& names,
                           const std::string& warning)>
            unknown_outcome;
        // The server's timeline, as an acquisition or a renewal read it.
        std::function<void(std::int64_t timeline)> timeline;
    };
    virtual void set_listeners(Listeners listeners) = 0;
    // Starts listening on first call and waits (at most `wait`) until it is active.
    virtual void ensure_listening(std::chrono::milliseconds wait) = 0;
    // Stops listening for good; no listener runs after it returns.
    virtual void stop_listening() = 0;
    // Closes idle connections (at shutdown); later calls reconnect.
    virtual void close_idle() = 0;
    // Opens the renewal connection if it is not open (on the renewal thread).
    virtual void warm_renewal() {}
};

}  // namespace pgelect::detail
