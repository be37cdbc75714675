// Leader election for one group on top of the lease-lock client.
#pragma once

#include <boost/signals2/signal.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include "pgelect/lock_client.hpp"
#include "pgelect/options.hpp"

namespace pgelect {

// Why a term of leadership ended.
enum class LossReason {
    resigned,              // resign() was called
    stopped,               // stop() or the destructor ended the campaign
    renewal_failed,        // renewals failed with errors until the renew deadline passed
    deadline_passed,       // no renewal finished within the renew deadline (statements hung)
    lock_taken,            // the lease row was taken over or freed by someone else
    database_unavailable,  // the database could not be reached until the renew deadline passed
};
std::string_view to_string(LossReason reason) noexcept;

// One term of leadership, as handed to become_leader.
struct Leadership {
    std::string group;
    std::string identity;
    std::string table;                    // lock table holding the lease row
    std::int64_t fencing_token = 0;       // the term: strictly greater than every earlier term's
    std::chrono::system_clock::time_point acquired_at{};
    // Fires when this term ends (before lost_leadership is emitted, or from the
    // renewal/deadline thread the moment the lease is lost).
    std::stop_token stop_token{};
};

struct LossInfo {
    std::string group;
    std::string identity;
    std::int64_t fencing_token = 0;
    LossReason reason = LossReason::stopped;
    std::string message;
    // The last instant (steady clock) this term could have been trusted.
    std::chrono::steady_clock::time_point valid_until{};
};

// The leader as observed in the table.
struct LeaderInfo {
    std::string identity;
    std::string data;
    std::int64_t fencing_token = 0;
    std::optional<std::chrono::system_clock::time_point> since{};
    bool operator==(const LeaderInfo&) const = default;
};

struct ElectorOptions {
    // The election group: the name of the lease row.  Required.
    std::string group{};
    // This candidate's identity (the row's owner).  Empty: "<hostname>-<pid>-<random>".
    std::string identity{};
    // Advertised to followers while leading (e.g. an address).
    std::string data{};
    // Lease timing; the LockClient's when empty.  Same rules as LeaseTiming.
    std::optional<LeaseTiming> timing{};
    // On stop(), release the lease so a follower takes over at once (true,
    // default) or let it expire after the lease (false).
    bool release_on_stop{true};
    // Longest pause between campaign attempts while the database is unreachable
    // (the pause doubles from 100 ms, with jitter).  Default 5 s.
    Duration max_backoff{std::chrono::seconds(5)};
};

namespace detail {
// Calls every slot; a slot that throws is logged and the others still run.
struct SafeCombiner {
    using result_type = void;
    template <class It>
    void operator()(It first, It last) const {
        for (; first != last; ++first) {
            try {
                *first;
            } catch (const std::exception& e) {
                log_slot_error(e.what());
            } catch (...) {
                log_slot_error("unknown exception");
            }
        }
    }
    static void log_slot_error(const char* what);
};
class ElectorImpl;
}  // namespace detail

// An Elector campaigns for one group.  All methods may be called from any
// thread, including from its own signal slots; signals are emitted on the
// elector's own thread and never while an internal lock is held.
//
// Signal contract: every become_leader is followed by exactly one
// lost_leadership (with the same fencing token) before the next
// become_leader; lost_leadership never fires without a preceding
// become_leader.  leader_changed reports the leader as observed in the table
// (including this elector when it wins), or nullopt when the lease is free.
// A slot that throws is logged and does not stop the campaign.
class Elector {
public:
    using LeaderSignal = boost::signals2::signal<void(const Leadership&), detail::SafeCombiner>;
    using LossSignal = boost::signals2::signal<void(const LossInfo&), detail::SafeCombiner>;
    using ChangeSignal =
        boost::signals2::signal<void(const std::optional<LeaderInfo>&), detail::SafeCombiner>;

    // `client` must outlive the Elector.  Throws InvalidArgumentError for bad options.
    Elector(LockClient& client, ElectorOptions options);
    // Stops (see stop()).
    ~Elector();
    Elector(const Elector&) = delete;
    Elector& operator=(const Elector&) = delete;

    LeaderSignal become_leader;
    LossSignal lost_leadership;
    ChangeSignal leader_changed;

    // Starts the campaign thread.  Calling it twice has no effect.
    void start();
    // Ends the campaign: resigns (or, without release_on_stop, abandons the
    // lease to expire) if leader, emits lost_leadership, joins the thread.
    // Bounded by the statement timeout (or, while a connection is being
    // opened to an unresponsive server, the connect timeout).  Called from a
    // slot it does not join;
    // the campaign ends when the slot returns.
    void stop();
    // Gives leadership away at once (followers are woken by NOTIFY).  With a
    // cooldown this instance does not campaign again for that long (also when
    // called while following).  No effect on a follower without a cooldown.
    void resign(Duration cooldown = Duration::zero());

    // True while this instance holds a lease it still trusts: false as soon as
    // the renew deadline passes, even if the campaign thread is stuck.
    bool is_leader() const;
    // The current term, if leading.
    std::optional<Leadership> leadership() const;
    // Waits until leader or `timeout`; returns is_leader().
    bool wait_for_leadership(Duration timeout) const;
    // The current leader as stored in the table, without campaigning.
    // UnavailableError if the database cannot be reached.
    std::optional<LeaderInfo> leader() const;
    // Updates the advertised data (like etcd's Proclaim): written at once if
    // leading, and used for every later term.
    void set_data(const std::string& data);
    // False while leader but renewals are overdue (more than two heartbeat
    // intervals since the last successful one), like client-go's HealthzAdaptor.
    bool healthy() const;

    const std::string& group() const;
    const std::string& identity() const;

private:
    std::shared_ptr<detail::ElectorImpl> impl_;
};

}  // namespace pgelect
