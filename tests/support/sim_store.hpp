// The simulation's database: one lock table shared by every simulated client
// (SimTable), seen by each client through its own SimStore, so that faults
// hit one client at a time.  The rules are those of src/lock/statements.cpp:
//   take      free, missing or still carrying the stale version the caller
//             saw; a takeover of an existing row draws GREATEST(counter,
//             row token + 1); NOTIFY 'A' + name;
//   renew     matched by (name, fencing token, owner) on a held row; a row
//             locked by another transaction (a fenced write) is skipped and
//             reported with no version;
//   release   and set_data matched by (name, fencing token, owner); a
//             release NOTIFYs 'R' + name; a takeover, release or set_data of
//             a row locked by a fenced write waits for it (or times out).
// Faults come from a Plan that the test thread sets for each client before
// each simulated step, so every random choice is made on the test thread:
//   fail        the statement does nothing, UnavailableError;
//   reply_lost  the statement applies, then UnavailableError;
//   delay       the request, and separately the reply, take simulated time;
//               a call longer than its statement timeout (plus grace) ends
//               in UnavailableError, applied or not depending on when it ran;
//   pause       every call of the client blocks until the pause ends, and so
//               does the reply of a call in flight (a stopped process);
//   drop        notifications to this client are lost.
// Every wait is a wait on the FakeClock, so FakeClock::step() waits for a
// blocked call to see each new instant.  Thread safety: all methods may be
// called from any thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <thread>
#include <vector>

#include "fake_clock.hpp"
#include "lock/names.hpp"
#include "lock/store.hpp"
#include "lock/timing_rules.hpp"
#include "pgelect/errors.hpp"

namespace pgelect_test::sim {

using TimePoint = pgelect::detail::Clock::time_point;
using Nanos = pgelect::detail::Clock::duration;

inline std::string ms_text(Nanos d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(d).count() / 1000.0) + "ms";
}

class SimStore;

// The table every client shares, plus what the checker needs to know about
// it: which token each successful reply vouched for and since when.
class SimTable {
public:
    struct Row {
        std::optional<std::int64_t> rvn;  // empty: free
        std::optional<std::string> data;
        std::string owner;
        std::optional<std::int64_t> fencing_token;
        bool by_hand = false;  // the current token came from a takeover by hand
    };

    explicit SimTable(std::shared_ptr<FakeClock> clock) : clock_(std::move(clock)) {}

    // Held while a statement applies; the checker holds it too, so that what
    // it reads of the table and of the clients' beliefs is one instant.
    std::mutex mu;

    // --- guarded by mu ------------------------------------------------------
    std::map<std::string, Row> rows;
    std::int64_t rvn_counter = 0;
    std::int64_t token_counter = 0;
    std::map<std::string, TimePoint> row_locked_until;  // fenced writes in progress
    // For each fencing token: the latest start of a call whose successful reply
    // (acquisition, or renewal with a new version) was delivered to its client.
    // A client may trust the token until that start + renew_deadline, never later.
    std::map<std::int64_t, TimePoint> vouched_at;
    // Changes by hand, per group: the last token taken before the last free
    // or delete by hand (a believer of that token or an older one may
    // overlap a successor, until its own deadline: the free let the
    // successor in), and before the last change of any kind (such a believer
    // may see a row that is not its own, until its deadline).
    std::map<std::string, std::int64_t> excused_upto;
    std::map<std::string, std::int64_t> touched_upto;
    bool excused(const std::string& group, std::int64_t token) const {
        auto it = excused_upto.find(group);
        return it != excused_upto.end() && token <= it->second;
    }
    bool touched(const std::string& group, std::int64_t token) const {
        auto it = touched_upto.find(group);
        return it != touched_upto.end() && token <= it->second;
    }
    // The last token taken per group (fencing tokens strictly increase).
    std::map<std::string, std::int64_t> last_token;
    std::string violation;  // the first broken table rule, if any
    std::deque<std::string> trace;

    void log_locked(const std::string& line) {
        trace.push_back("[" + ms_text(clock_->now().time_since_epoch() - origin_) + "] " + line);
        if (trace.size() > 200) trace.pop_front();
    }
    void set_origin(Nanos origin) { origin_ = origin; }

    bool row_locked_locked(const std::string& name) const {
        auto it = row_locked_until.find(name);
        return it != row_locked_until.end() && clock_->now() < it->second;
    }

    // Takes `name` for `owner` (a client's take or a takeover by hand);
    // returns the new row.  Records a violation if the token does not grow.
    Row& take_locked(const std::string& name, const std::string& owner,
                     const std::optional<std::string>& data, bool replace_data, bool by_hand) {
        auto [it, fresh] = rows.try_emplace(name);
        Row& r = it->second;
        if (fresh || replace_data) r.data = data;
        r.owner = owner;
        r.rvn = ++rvn_counter;
        std::int64_t token = ++token_counter;
        if (!fresh && r.fencing_token) token = std::max(token, *r.fencing_token + 1);
        r.fencing_token = token;
        r.by_hand = by_hand;
        auto last = last_token.find(name);
        if (last != last_token.end() && token <= last->second && violation.empty()) {
            violation = "fencing token of \"" + name + "\" did not grow: " + std::to_string(token) +
                        " after " + std::to_string(last->second);
        }
        last_token[name] = token;
        log_locked((by_hand ? "by hand: " : "") + owner + " takes " + name + " token " +
                   std::to_string(token) + " rvn " + std::to_string(*r.rvn));
        return r;
    }

    // --- listeners ----------------------------------------------------------
    void add_listener(SimStore* s) {
        std::lock_guard lk(listeners_mu_);
        listeners_.insert(s);
    }
    void remove_listener(SimStore* s) {
        std::lock_guard lk(listeners_mu_);
        listeners_.erase(s);
    }
    // Delivers `payload` to every listening client (outside `mu`).
    inline void notify(const std::string& payload);

    // --- changes by hand (the test thread) ------------------------------------
    // Someone takes `name` by hand, whatever its state, and never renews it.
    void take_by_hand(const std::string& name) {
        {
            std::lock_guard lk(mu);
            touched_upto[name] = last_token[name];
            take_locked(name, "intruder", std::string("by hand"), false, true);
        }
        notify("A" + name);
    }
    // Someone frees (`erase`: deletes) the row of `name` by hand.
    void free_by_hand(const std::string& name, bool erase) {
        {
            std::lock_guard lk(mu);
            auto it = rows.find(name);
            if (it == rows.end() || (!erase && !it->second.rvn)) return;
            excused_upto[name] = touched_upto[name] = last_token[name];
            log_locked(std::string("by hand: ") + (erase ? "delete " : "free ") + name + " (token " +
                       std::to_string(it->second.fencing_token.value_or(0)) + ")");
            if (erase) rows.erase(it); else it->second.rvn.reset();
        }
        notify("R" + name);
    }
    // A fenced write holds the row lock of `name` until `until`.
    void lock_row_by_hand(const std::string& name, TimePoint until) {
        std::lock_guard lk(mu);
        row_locked_until[name] = until;
        log_locked("by hand: row " + name + " locked for " + ms_text(until - clock_->now()));
    }
    void unlock_rows() {
        std::lock_guard lk(mu);
        row_locked_until.clear();
    }

    FakeClock& clock() { return *clock_; }

    // Threads that always come back to wait on the clock (the actors'):
    // any other thread that releases a lock (a dispatcher worker, an
    // elector's campaign thread) may go on to block elsewhere, so its waits
    // are not counted by FakeClock::settle().
    void add_loyal_thread(std::thread::id id) {
        std::lock_guard lk(threads_mu_);
        loyal_.insert(id);
    }
    bool loyal_thread() {
        std::lock_guard lk(threads_mu_);
        return loyal_.count(std::this_thread::get_id()) > 0;
    }

private:
    const std::shared_ptr<FakeClock> clock_;
    Nanos origin_{};
    std::mutex threads_mu_;
    std::set<std::thread::id> loyal_;  // guarded by threads_mu_
    std::mutex listeners_mu_;
    std::set<SimStore*> listeners_;  // guarded by listeners_mu_
};

class SimStore final : public pgelect::detail::LockStore {
public:
    using RenewItem = pgelect::detail::RenewItem;
    using Renewed = pgelect::detail::Renewed;
    using PolledRow = pgelect::detail::PolledRow;
    using Taken = pgelect::detail::Taken;
    using RenewVia = pgelect::detail::RenewVia;

    enum class Outcome { ok, fail, reply_lost };
    // What happens to the calls that start during the next step.
    struct Plan {
        Outcome outcome = Outcome::ok;
        Nanos request_delay{};  // before the statement applies
        Nanos reply_delay{};    // after it applied, before the caller hears of it
        bool drop_notifications = false;
    };

    SimStore(std::shared_ptr<SimTable> table, std::string client, const pgelect::LockClientOptions& o)
        : table_(std::move(table)),
          client_(std::move(client)),
          table_name_(pgelect::detail::parse_table_name(o.table)),
          pool_limit_(o.statement_timeout + pgelect::detail::statement_grace(o.statement_timeout)),
          renewal_limit_(pgelect::detail::renewal_timeout(o) +
                         pgelect::detail::statement_grace(pgelect::detail::renewal_timeout(o))) {}
    ~SimStore() override { table_->remove_listener(this); }

    // --- scripting (test thread) ----------------------------------------------
    void set_plan(const Plan& p) {
        std::lock_guard lk(mu_);
        plan_ = p;
    }
    void pause_until(TimePoint t) {
        std::lock_guard lk(mu_);
        paused_until_ = std::max(paused_until_, t);
    }
    // Ends a pause now (the faults stop).
    void clear_pause() {
        {
            std::lock_guard lk(mu_);
            paused_until_ = TimePoint{};
        }
        cv_.notify_all();
    }
    // From now on nothing blocks (pauses, delays and row locks are ignored):
    // for the end of a run, so that every thread can be joined.
    void unblock_forever() {
        {
            std::lock_guard lk(mu_);
            shutdown_ = true;
            plan_ = Plan{};
        }
        cv_.notify_all();
    }
    const std::string& client() const { return client_; }
    // Whether the client's renewal thread has sent a renewal: its renewal
    // and deadline threads run (and wait on the clock) from then on.
    bool renewing() const { return renewing_; }

    // Delivers a notification (SimTable::notify, any thread).
    void deliver(const std::string& payload) {
        std::lock_guard lk(listen_mu_);
        if (!listening_ || !listeners_.notification) return;
        {
            std::lock_guard slk(mu_);
            if (plan_.drop_notifications && !shutdown_) return;
        }
        listeners_.notification(payload);
    }

    // --- LockStore -------------------------------------------------------------
    void create_table() override {}
    void try_create_table() override {}
    void drop_table() override {}

    pgelect::detail::TakeOutcome try_take(const std::string& name, const std::string& owner,
                                  const pgelect::AcquireOptions& o,
                                  std::optional<std::int64_t> stale_rvn) override {
        std::optional<Taken> taken;
        call(context("acquire", name), pool_limit_, &name, [&] {
            auto it = table_->rows.find(name);
            if (it != table_->rows.end() && it->second.rvn && it->second.rvn != stale_rvn) {
                table_->log_locked(client_ + " try_take " + name + ": busy");
                return std::function<void()>{};
            }
            auto& r = table_->take_locked(name, owner, o.data, o.replace_data || it == table_->rows.end(), false);
            taken = Taken{*r.rvn, *r.fencing_token, r.data.value_or("")};
            const auto token = *r.fencing_token;
            pending_notify("A" + name);
            return std::function<void()>([this, token] { vouch(token); });
        });
        return taken;
    }

    std::unordered_map<std::string, PolledRow> poll(const std::vector<std::string>& names) override {
        std::unordered_map<std::string, PolledRow> out;
        call(names.size() == 1 ? context("read", names[0]) : "read locks", pool_limit_, nullptr, [&] {
            out.clear();
            for (const auto& name : names) {
                auto it = table_->rows.find(name);
                if (it != table_->rows.end()) {
                    out.emplace(name, PolledRow{it->second.rvn, it->second.owner, it->second.fencing_token});
                }
            }
            return std::function<void()>{};
        });
        return out;
    }

    std::vector<Renewed> renew(const std::vector<RenewItem>& items, RenewVia via) override {
        std::vector<Renewed> out;
        if (via == RenewVia::renewal_connection) renewing_ = true;
        call(items.size() == 1 ? context("renew", items[0].name) : "renew locks",
             via == RenewVia::pool ? pool_limit_ : renewal_limit_, nullptr, [&] {
                 out.clear();
                 std::vector<std::int64_t> renewed;
                 std::string line = client_ + " renew";
                 for (const auto& i : items) {
                     auto it = table_->rows.find(i.name);
                     line += " " + i.name + "/" + std::to_string(i.fencing_token);
                     if (it == table_->rows.end() || !held_by(it->second, i.fencing_token, i.owner)) {
                         line += ":gone";
                         continue;
                     }
                     if (table_->row_locked_locked(i.name)) {
                         line += ":skipped";
                         out.push_back({i.name, i.fencing_token, std::nullopt});
                         continue;
                     }
                     it->second.rvn = ++table_->rvn_counter;
                     line += ":rvn " + std::to_string(*it->second.rvn);
                     out.push_back({i.name, i.fencing_token, *it->second.rvn});
                     renewed.push_back(i.fencing_token);
                 }
                 table_->log_locked(line);
                 return std::function<void()>([this, renewed] {
                     for (auto t : renewed) vouch(t);
                 });
             });
        return out;
    }

    bool release(const std::string& name, std::int64_t token, const std::string& owner,
                 bool keep) override {
        bool released = false;
        if (!table_->loyal_thread()) table_->clock().ignore_this_thread();
        call(context("release", name), pool_limit_, &name, [&] {
            auto it = table_->rows.find(name);
            if (it == table_->rows.end() || !held_by(it->second, token, owner)) {
                table_->log_locked(client_ + " release " + name + "/" + std::to_string(token) + ": not held");
                return std::function<void()>{};
            }
            if (keep) it->second.rvn.reset(); else table_->rows.erase(it);
            released = true;
            table_->log_locked(client_ + " release " + name + "/" + std::to_string(token));
            pending_notify("R" + name);
            return std::function<void()>{};
        });
        return released;
    }

    bool set_data(const std::string& name, std::int64_t token, const std::string& owner,
                  const std::string& data) override {
        bool ok = false;
        call(context("set data of", name), pool_limit_, &name, [&] {
            auto it = table_->rows.find(name);
            if (it == table_->rows.end() || !held_by(it->second, token, owner)) return std::function<void()>{};
            it->second.data = data;
            ok = true;
            return std::function<void()>{};
        });
        return ok;
    }

    pgelect::LockInfo get(const std::string& name) override {
        pgelect::LockInfo info;
        bool found = false;
        call(context("read", name), pool_limit_, nullptr, [&] {
            auto it = table_->rows.find(name);
            if (it != table_->rows.end()) {
                found = true;
                info = to_info(it->first, it->second);
            }
            return std::function<void()>{};
        });
        if (!found) throw pgelect::NotFoundError(context("read", name) + ": no such lock");
        return info;
    }

    std::vector<pgelect::LockInfo> get_all() override {
        std::vector<pgelect::LockInfo> out;
        call("list locks", pool_limit_, nullptr, [&] {
            out.clear();
            for (const auto& [name, r] : table_->rows) out.push_back(to_info(name, r));
            return std::function<void()>{};
        });
        return out;
    }

    void set_listeners(Listeners listeners) override {
        std::lock_guard lk(listen_mu_);
        listeners_ = std::move(listeners);
    }
    void ensure_listening(std::chrono::milliseconds) override {
        {
            std::lock_guard lk(listen_mu_);
            if (stopped_ || listening_) return;
            listening_ = true;
        }
        table_->add_listener(this);
    }
    void stop_listening() override {
        table_->remove_listener(this);
        std::lock_guard lk(listen_mu_);
        stopped_ = true;
        listening_ = false;
    }
    void close_idle() override {}

private:
    std::string context(const char* operation, const std::string& name) const {
        return pgelect::detail::lock_context(operation, name, table_name_);
    }
    static bool held_by(const SimTable::Row& r, std::int64_t token, const std::string& owner) {
        return r.rvn && r.fencing_token == token && r.owner == owner;
    }
    static pgelect::LockInfo to_info(const std::string& name, const SimTable::Row& r) {
        pgelect::LockInfo info;
        info.name = name;
        info.owner = r.owner;
        info.data = r.data;
        info.record_version_number = r.rvn;
        info.fencing_token = r.fencing_token;
        return info;
    }

    // Called under table_->mu by the apply step of a statement.
    void pending_notify(const std::string& payload) { pending_.push_back(payload); }
    // Under table_->mu, as a successful reply is delivered.
    void vouch(std::int64_t token) {
        auto& at = table_->vouched_at[token];
        at = std::max(at, call_start_);
    }

    // Blocks (on the fake clock) until `until`, or while paused when `until`
    // is empty.  Returns at once after unblock_forever().
    void wait_sim(std::optional<TimePoint> until) {
        auto& clock = table_->clock();
        std::unique_lock lk(mu_);
        for (;;) {
            if (shutdown_) break;
            const TimePoint target = until ? *until : paused_until_;
            if (clock.now() >= target) break;
            clock.wait_until(cv_, lk, target);
        }
    }

    // Runs one statement with the current plan.  `apply` runs under the
    // table's mutex and returns what to do (also under it) when its reply
    // is delivered successfully.  `row` names a row whose fenced-write lock
    // the statement must wait for.
    template <class Apply>
    void call(const std::string& ctx, Nanos limit, const std::string* row, Apply&& apply) {
        auto& clock = table_->clock();
        Plan plan;
        {
            std::lock_guard lk(mu_);
            plan = plan_;
        }
        const TimePoint entered = clock.now();  // no later than the caller's own start
        wait_sim(std::nullopt);  // a stopped process sends nothing
        const TimePoint start = clock.now();
        const TimePoint give_up = start + limit;
        auto timed_out = [&] {
            return pgelect::UnavailableError(ctx + ": statement timeout (simulated, " + ms_text(limit) + ")");
        };
        if (plan.outcome == Outcome::fail) {
            wait_sim(std::min(give_up, start + plan.request_delay));
            throw pgelect::UnavailableError(ctx + ": connection to PostgreSQL lost (simulated)");
        }
        wait_sim(std::min(give_up, start + plan.request_delay));
        if (clock.now() >= give_up && !unblocked()) throw timed_out();
        std::function<void()> on_reply;
        std::vector<std::string> notes;
        for (;;) {
            std::unique_lock tlk(table_->mu);
            if (row && table_->row_locked_locked(*row) && !unblocked()) {
                const TimePoint until = std::min(give_up, table_->row_locked_until[*row]);
                tlk.unlock();
                if (clock.now() >= give_up) throw timed_out();
                wait_sim(until);  // the takeover's UPDATE waits for the fenced write
                continue;
            }
            on_reply = apply();
            notes.swap(pending_);
            break;
        }
        for (const auto& n : notes) table_->notify(n);  // the statement committed
        wait_sim(std::min(give_up, clock.now() + plan.reply_delay));
        wait_sim(std::nullopt);  // the reply waits for a stopped process
        if (clock.now() >= give_up && !unblocked()) throw timed_out();
        if (plan.outcome == Outcome::reply_lost) {
            throw pgelect::UnavailableError(ctx + ": outcome unknown (simulated: reply lost)");
        }
        if (on_reply) {
            std::lock_guard tlk(table_->mu);
            call_start_ = entered;
            on_reply();
        }
    }

    bool unblocked() const {
        std::lock_guard lk(mu_);
        return shutdown_;
    }

    // constant after construction
    const std::shared_ptr<SimTable> table_;
    const std::string client_;
    const pgelect::detail::TableName table_name_;
    const Nanos pool_limit_;
    const Nanos renewal_limit_;

    mutable std::mutex mu_;  // guards the plan and the pause
    std::condition_variable cv_;
    Plan plan_;
    TimePoint paused_until_{};
    bool shutdown_ = false;

    // guarded by table_->mu
    std::vector<std::string> pending_;
    TimePoint call_start_{};
    std::atomic<bool> renewing_{false};

    std::mutex listen_mu_;  // held while a notification is delivered
    Listeners listeners_;
    bool listening_ = false;
    bool stopped_ = false;
};

inline void SimTable::notify(const std::string& payload) {
    std::vector<SimStore*> out;
    {
        std::lock_guard lk(listeners_mu_);
        out.assign(listeners_.begin(), listeners_.end());
    }
    for (auto* s : out) s->deliver(payload);
}

}  // namespace pgelect_test::sim
