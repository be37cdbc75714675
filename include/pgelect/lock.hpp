// A held lease lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

namespace pgelect {

namespace detail {
class ClientCore;
struct LockState;
}  // namespace detail

class LockClient;

// Why a lock stopped being held.
enum class LossCause {
    none,                  // still held
    released,              // release() by this holder
    taken_over,            // the row changed hands (or was freed by someone else)
    deadline_passed,       // no successful renewal within the renew deadline (statements hung)
    renewal_failed,        // ... and the renewals that were tried failed with an error
    database_unavailable,  // ... because the database could not be reached
    client_closed,         // the LockClient was destroyed
};
std::string_view to_string(LossCause cause) noexcept;

// What a waiting contender saw when it read a lock row (see AcquireOptions::observer).
struct LockObservation {
    std::string name;
    bool exists = false;  // a row exists (held or free)
    bool held = false;
    std::string owner;                         // holder (or last holder of a free row)
    std::optional<std::int64_t> fencing_token;
};

// A Lock is the handle of one acquired lease.  It is move-only; destroying a
// Lock that is still held releases it (errors are logged, never thrown).  All
// methods may be called from any thread.
//
// A Lock stays valid until the start of its last successful renewal plus the
// renew deadline.  When renewals fail for that long, when the renewal finds the
// row taken over, or when release() runs, is_released() turns true and
// lost_token() fires.  The handle may outlive its LockClient: the client
// releases the lock when it is destroyed and the handle then reports
// LossCause::client_closed.
class Lock {
public:
    Lock(Lock&&) noexcept;
    Lock& operator=(Lock&&) noexcept;
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;
    ~Lock();

    const std::string& name() const;
    const std::string& owner() const;
    // The payload as last written by this holder (acquire or set_data()).
    std::string data() const;
    // Changes on every acquisition and renewal (pglock's record version number).
    std::int64_t record_version_number() const;
    // Taken once per acquisition from <table>_fence: strictly greater than the
    // token of any earlier holder of this lock.  Use it to fence writes.
    std::int64_t fencing_token() const;
    // True once released, lost or past its renew deadline.  Never true->false.
    bool is_released() const;
    // Steady-clock instant until which this holder trusts the lease.
    std::chrono::steady_clock::time_point valid_until() const;
    // Fires when the lock is released or lost, from whatever thread notices.
    std::stop_token lost_token() const;
    // LossCause::none while held; afterwards why it ended, with a message.
    LossCause loss_cause() const;
    std::string loss_reason() const;

    // Releases the lock in one statement (deleting the row, or freeing it with
    // keep_on_release) and wakes waiting contenders.  Throws
    // AlreadyReleasedError if the lock was already released or someone else
    // holds the row now; the handle is marked released either way.
    void release();
    // Stops renewing and trusting the lock without touching the row: others
    // take it over once the lease runs out (like a crash, minus the crash).
    void abandon();
    // Replaces the payload of the held row.  Throws AlreadyReleasedError if the
    // lock is no longer held.
    void set_data(const std::string& data);

private:
    friend class detail::ClientCore;
    friend class LockClient;
    Lock(std::shared_ptr<detail::ClientCore> core, std::shared_ptr<detail::LockState> state);

    std::shared_ptr<detail::ClientCore> core_;
    std::shared_ptr<detail::LockState> state_;
};

// A lock row as read without acquiring it.
struct LockInfo {
    std::string name;
    std::optional<std::string> owner;  // holder (or last holder of a kept row)
    std::optional<std::string> data;
    std::optional<std::int64_t> record_version_number;  // empty: the lock is free
    std::optional<std::int64_t> fencing_token;
    std::optional<std::chrono::system_clock::time_point> acquired_at;  // server time, display only
    std::optional<std::chrono::system_clock::time_point> renewed_at;   // server time, display only
    bool held() const { return record_version_number.has_value(); }
};

}  // namespace pgelect
