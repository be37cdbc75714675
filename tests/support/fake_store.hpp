// An in-memory LockStore for unit tests: the lock table as a map, with the
// same rules as the SQL statements (sequence-drawn record versions and fencing
// tokens, conditional take, token-matched renew/release/set_data) and
// scriptable faults per operation:
//   fail        the statement does nothing and throws UnavailableError;
//   reply_lost  the statement takes effect, then UnavailableError is thrown
//               (the connection died before the answer arrived);
// plus a hook run before each call (to block, or to move a fake clock: a late reply).
// Notifications ('R' / 'A' + name) are delivered on the calling thread once
// the client listens.  Thread safety: all methods may be called from any thread.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "lock/names.hpp"
#include "lock/store.hpp"
#include "pgelect/errors.hpp"

namespace pgelect_test {

class FakeStore final : public pgelect::detail::LockStore {
public:
    using RenewItem = pgelect::detail::RenewItem;
    using Renewed = pgelect::detail::Renewed;
    using PolledRow = pgelect::detail::PolledRow;
    using Taken = pgelect::detail::Taken;
    using RenewVia = pgelect::detail::RenewVia;

    enum class Op { create_table, try_create_table, drop_table, try_take, poll, renew, release, set_data, get, get_all };
    enum class Fault { fail, reply_lost };

    struct Row {
        std::optional<std::int64_t> rvn;  // empty: free
        std::optional<std::string> data;
        std::string owner;
        std::optional<std::int64_t> fencing_token;
    };

    explicit FakeStore(const std::string& table = "locks")
        : table_(pgelect::detail::parse_table_name(table)) {}

    // --- scripting -------------------------------------------------------

    // The next `count` calls of `op` suffer `fault` (after any already scripted).
    void script(Op op, Fault fault, int count = 1) {
        std::lock_guard lk(mu_);
        for (int i = 0; i < count; ++i) scripted_[op].push_back(fault);
    }
    // While set (non-zero): every acquisition attempt takes nothing and reports
    // this failover quarantine, as the real store does after a promotion.
    void set_quarantine(std::chrono::milliseconds q) {
        std::lock_guard lk(mu_);
        quarantine_ = q;
    }
    // Every call of `op` suffers `fault` (after the scripted ones), until cleared.
    void fault_always(Op op, std::optional<Fault> fault) {
        std::lock_guard lk(mu_);
        if (fault) always_[op] = *fault; else always_.erase(op);
    }
    // Runs before every call of `op`, outside the store's lock (may block).
    void before(Op op, std::function<void()> hook) {
        std::lock_guard lk(mu_);
        hooks_[op] = std::move(hook);
    }
    int calls(Op op) const {
        std::lock_guard lk(mu_);
        auto it = calls_.find(op);
        return it == calls_.end() ? 0 : it->second;
    }
    std::vector<std::vector<RenewItem>> renewals() const {
        std::lock_guard lk(mu_);
        return renewals_;
    }
    // The names of each read, in order.
    std::vector<std::vector<std::string>> polls() const {
        std::lock_guard lk(mu_);
        return polled_;
    }

    // --- the table, as other clients change it ---------------------------

    std::optional<Row> row(const std::string& name) const {
        std::lock_guard lk(mu_);
        auto it = rows_.find(name);
        if (it == rows_.end()) return std::nullopt;
        return it->second;
    }
    // Another client takes `name` (whatever its state) and keeps it without
    // renewing.  Returns its fencing token.
    std::int64_t take_as(const std::string& name, const std::string& owner) {
        std::int64_t token;
        {
            std::lock_guard lk(mu_);
            Row& r = rows_[name];
            r.rvn = ++rvn_;
            r.owner = owner;
            r.fencing_token = token = ++token_;
        }
        notify("A" + name);
        return token;
    }
    // Another client renews its hold of `name` (a new record version).
    void renew_as_other(const std::string& name) {
        std::lock_guard lk(mu_);
        auto it = rows_.find(name);
        if (it != rows_.end() && it->second.rvn) it->second.rvn = ++rvn_;
    }
    // Another transaction holds the row lock of `name` (a fenced write):
    // renewals skip it and report it unknown until unlocked.
    void lock_row(const std::string& name, bool locked) {
        std::lock_guard lk(mu_);
        if (locked) row_locked_.insert(name); else row_locked_.erase(name);
    }
    // Another client releases `name` (deleting the row) and notifies.
    void release_as_other(const std::string& name) {
        {
            std::lock_guard lk(mu_);
            rows_.erase(name);
        }
        notify("R" + name);
    }
    // A notification arrives (also while notifications are held back).
    void notify(const std::string& payload) {
        std::function<void(const std::string&)> fn;
        {
            std::lock_guard lk(mu_);
            if (!listening_) return;
            fn = listeners_.notification;
        }
        if (fn) fn(payload);
    }
    // The listening connection was re-established: notifications may have been missed.
    void reconnect() {
        std::function<void()> fn;
        {
            std::lock_guard lk(mu_);
            if (!listening_) return;
            fn = listeners_.reconnected;
        }
        if (fn) fn();
    }
    bool listening() const {
        std::lock_guard lk(mu_);
        return listening_;
    }

    // --- LockStore ---------------------------------------------------------

    void create_table() override {
        call(Op::create_table, "create lock table", [&] {
            if (exists_) {
                throw pgelect::FailedPreconditionError("create lock table " + table_.display() +
                                                       ": the lock table already exists");
            }
            exists_ = true;
        });
    }
    void try_create_table() override {
        call(Op::try_create_table, "create lock table", [&] { exists_ = true; });
    }
    void drop_table() override {
        call(Op::drop_table, "drop lock table", [&] {
            exists_ = false;
            rows_.clear();
        });
    }

    pgelect::detail::TakeOutcome try_take(const std::string& name, const std::string& owner,
                                  const pgelect::AcquireOptions& o,
                                  std::optional<std::int64_t> stale_rvn) override {
        std::optional<Taken> taken;
        std::chrono::milliseconds quarantine{0};
        call(Op::try_take, context("acquire", name), [&] {
            need_table("acquire", name);
            if (quarantine_.count() > 0) {
                quarantine = quarantine_;
                return;
            }
            auto it = rows_.find(name);
            if (it == rows_.end()) {
                it = rows_.emplace(name, Row{std::nullopt, o.data, owner, std::nullopt}).first;
            } else if (!it->second.rvn || it->second.rvn == stale_rvn) {
                if (o.replace_data) it->second.data = o.data;
                it->second.owner = owner;
            } else {
                return;
            }
            it->second.rvn = ++rvn_;
            it->second.fencing_token = ++token_;
            taken = Taken{*it->second.rvn, *it->second.fencing_token, it->second.data.value_or("")};
            pending_.push_back("A" + name);
        });
        flush();
        pgelect::detail::TakeOutcome outcome(std::move(taken));
        outcome.quarantine = quarantine;
        return outcome;
    }

    std::unordered_map<std::string, PolledRow> poll(const std::vector<std::string>& names) override {
        std::unordered_map<std::string, PolledRow> out;
        call(Op::poll, names.size() == 1 ? context("read", names[0]) : "read locks", [&] {
            need_table("read", names.front());
            polled_.push_back(names);
            for (const auto& name : names) {
                auto it = rows_.find(name);
                if (it != rows_.end()) {
                    out.emplace(name, PolledRow{it->second.rvn, it->second.owner, it->second.fencing_token});
                }
            }
        });
        return out;
    }

    std::vector<Renewed> renew(const std::vector<RenewItem>& items, RenewVia) override {
        std::vector<Renewed> out;
        call(Op::renew, items.size() == 1 ? context("renew", items[0].name) : "renew locks", [&] {
            renewals_.push_back(items);
            need_table("renew", items.empty() ? "" : items[0].name);
            out.clear();
            for (const auto& i : items) {
                auto it = rows_.find(i.name);
                if (it == rows_.end() || !held_by(it->second, i.fencing_token, i.owner)) continue;
                if (row_locked_.count(i.name)) {  // skipped, as SKIP LOCKED does
                    out.push_back({i.name, i.fencing_token, std::nullopt});
                    continue;
                }
                it->second.rvn = ++rvn_;
                out.push_back({i.name, i.fencing_token, *it->second.rvn});
            }
        });
        return out;
    }

    bool release(const std::string& name, std::int64_t token, const std::string& owner,
                 bool keep) override {
        bool released = false;
        call(Op::release, context("release", name), [&] {
            need_table("release", name);
            auto it = rows_.find(name);
            if (it == rows_.end() || !held_by(it->second, token, owner)) return;
            if (keep) it->second.rvn.reset(); else rows_.erase(it);
            released = true;
            pending_.push_back("R" + name);
        });
        flush();
        return released;
    }

    bool set_data(const std::string& name, std::int64_t token, const std::string& owner,
                  const std::string& data) override {
        bool ok = false;
        call(Op::set_data, context("set data of", name), [&] {
            need_table("set data of", name);
            auto it = rows_.find(name);
            if (it == rows_.end() || !held_by(it->second, token, owner)) return;
            it->second.data = data;
            ok = true;
        });
        return ok;
    }

    pgelect::LockInfo get(const std::string& name) override {
        pgelect::LockInfo info;
        call(Op::get, context("read", name), [&] {
            need_table("read", name);
            auto it = rows_.find(name);
            if (it == rows_.end()) throw pgelect::NotFoundError(context("read", name) + ": no such lock");
            info = to_info(it->first, it->second);
        });
        return info;
    }

    std::vector<pgelect::LockInfo> get_all() override {
        std::vector<pgelect::LockInfo> out;
        call(Op::get_all, "list locks on table " + table_.display(), [&] {
            need_table("list", "");
            out.clear();
            for (const auto& [name, r] : rows_) out.push_back(to_info(name, r));
        });
        return out;
    }

    void set_listeners(Listeners listeners) override {
        std::lock_guard lk(mu_);
        listeners_ = std::move(listeners);
    }
    void ensure_listening(std::chrono::milliseconds) override {
        std::lock_guard lk(mu_);
        if (!stopped_) listening_ = true;
    }
    void stop_listening() override {
        std::lock_guard lk(mu_);
        stopped_ = true;
        listening_ = false;
    }
    void close_idle() override {}

private:
    std::string context(const char* operation, const std::string& name) const {
        return pgelect::detail::lock_context(operation, name, table_);
    }

    static bool held_by(const Row& r, std::int64_t token, const std::string& owner) {
        return r.rvn && r.fencing_token == token && r.owner == owner;
    }

    static pgelect::LockInfo to_info(const std::string& name, const Row& r) {
        pgelect::LockInfo info;
        info.name = name;
        info.owner = r.owner;
        info.data = r.data;
        info.record_version_number = r.rvn;
        info.fencing_token = r.fencing_token;
        return info;
    }

    void need_table(const char* operation, const std::string& name) const {
        if (!exists_) {
            throw pgelect::FailedPreconditionError(context(operation, name) + ": the lock table " +
                                                   table_.display() + " does not exist");
        }
    }

    // Runs the hook, then `apply` under the lock with the scripted fault, if any.
    template <class Fn>
    void call(Op op, const std::string& ctx, Fn&& apply) {
        std::function<void()> hook;
        {
            std::lock_guard lk(mu_);
            ++calls_[op];
            auto h = hooks_.find(op);
            if (h != hooks_.end()) hook = h->second;
        }
        if (hook) hook();
        std::optional<Fault> fault;
        {
            std::lock_guard lk(mu_);
            auto& queue = scripted_[op];
            if (!queue.empty()) {
                fault = queue.front();
                queue.pop_front();
            } else if (auto a = always_.find(op); a != always_.end()) {
                fault = a->second;
            }
            if (fault == Fault::fail) {
                throw pgelect::UnavailableError(ctx + ": connection to PostgreSQL lost (injected)");
            }
            apply();
        }
        if (fault == Fault::reply_lost) {
            flush();  // the statement committed: its notifications went out
            throw pgelect::UnavailableError(ctx + ": outcome unknown (injected: reply lost)");
        }
    }

    // Delivers the notifications of the statement just run, outside the lock.
    void flush() {
        std::vector<std::string> out;
        {
            std::lock_guard lk(mu_);
            out.swap(pending_);
        }
        for (const auto& p : out) notify(p);
    }

    const pgelect::detail::TableName table_;

    mutable std::mutex mu_;  // guards everything below
    bool exists_ = true;
    std::map<std::string, Row> rows_;
    std::int64_t rvn_ = 0;
    std::int64_t token_ = 0;
    std::set<std::string> row_locked_;
    std::map<Op, std::deque<Fault>> scripted_;
    std::map<Op, Fault> always_;
    std::chrono::milliseconds quarantine_{0};
    std::map<Op, std::function<void()>> hooks_;
    std::map<Op, int> calls_;
    std::vector<std::vector<RenewItem>> renewals_;
    std::vector<std::vector<std::string>> polled_;
    std::vector<std::string> pending_;
    Listeners listeners_;
    bool listening_ = false;
    bool stopped_ = false;
};

}  // namespace pgelect_test
