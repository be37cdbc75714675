#include "lock/renewer.hpp"

#include <algorithm>
#include <map>
#include <utility>

#include "lock/timing_rules.hpp"

namespace pgelect::detail {

using TimePoint = BootClock::time_point;

Renewer::Renewer(RenewFn renew, LostFn on_lost, std::shared_ptr<Clock> clock,
                 std::function<void()> warm)
    : renew_(std::move(renew)),
      on_lost_(std::move(on_lost)),
      clock_(std::move(clock)),
      warm_(std::move(warm)) {}

Renewer::~Renewer() { stop(); }

void Renewer::start_threads_locked() {
    if (started_ || stopping_) return;
    started_ = true;
    renew_thread_ = std::thread([this] { renew_loop(); });
    deadline_thread_ = std::thread([this] { deadline_loop(); });
}

void Renewer::add(std::shared_ptr<LockState> state) {
    bool wake_renewal = false;
    bool wake_deadline = false;
    {
        std::lock_guard lk(mu_);
        {
            std::lock_guard slk(state->mu);
            wake_renewal = state->automatic_renewal() && state->next_renewal < renew_wakes_at_;
            wake_deadline = state->valid_until < deadline_wakes_at_;
        }
        held_[state.get()] = std::move(state);
        // Only while the renewal connection is not known to work (no warm-up
        // or renewal succeeded in the last second: an idle connection may
        // have broken unnoticed): waking the renewal thread on every
        // acquisition cost a context switch each.
        if (warm_ && !(clock_->now() < works_until_)) {
            warm_pending_ = true;
            wake_renewal = true;
        }
        start_threads_locked();
    }
    if (wake_renewal) renew_cv_.notify_one();
    if (wake_deadline) deadline_cv_.notify_one();
}

void Renewer::remove(const LockState* state) {
    std::lock_guard lk(mu_);
    held_.erase(state);
}

std::vector<std::shared_ptr<LockState>> Renewer::held() const {
    std::lock_guard lk(mu_);
    std::vector<std::shared_ptr<LockState>> out;
    out.reserve(held_.size());
    for (const auto& [_, s] : held_) out.push_back(s);
    return out;
}

std::uint64_t Renewer::ticks() const {
    std::lock_guard lk(mu_);
    return ticks_;
}

void Renewer::request_stop() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    renew_cv_.notify_all();
    deadline_cv_.notify_all();
}

void Renewer::stop() {
    request_stop();
    if (renew_thread_.joinable()) renew_thread_.join();
    if (deadline_thread_.joinable()) deadline_thread_.join();
}

void Renewer::renew_loop() {
    std::unique_lock lk(mu_);
    while (!stopping_) {
        if (warm_pending_) {
            warm_pending_ = false;
            lk.unlock();
            bool works = false;
            try {
                warm_();
                works = true;
            } catch (...) {
            }
            lk.lock();
            works_until_ = works ? clock_->now() + kWarmFor : TimePoint::min();
            continue;
        }
        auto next = TimePoint::max();
        for (const auto& [_, s] : held_) {
            if (!s->automatic_renewal()) continue;
            std::lock_guard slk(s->mu);
            if (!s->released) next = std::min(next, s->next_renewal);
        }
        if (next > clock_->now()) {
            renew_wakes_at_ = next;
            clock_->wait_until(renew_cv_, lk, next);
            renew_wakes_at_ = TimePoint::min();  // awake: add() need not wake it
            continue;
        }
        // One statement renews every held lock, due or not: renewing early is
        // free, a second statement is not.  A lock already past its renew
        // deadline is not renewed: it is reported lost here, in case the
        // deadline thread has not got to it yet.
        std::vector<std::shared_ptr<LockState>> batch;
        std::vector<std::shared_ptr<LockState>> expired;
        std::vector<RenewItem> items;
        const auto now = clock_->now();
        for (const auto& [_, s] : held_) {
            if (!s->automatic_renewal()) continue;
            std::lock_guard slk(s->mu);
            if (s->released) continue;
            if (s->valid_until <= now) {
                expired.push_back(s);
                continue;
            }
            batch.push_back(s);
            items.push_back({s->name, s->fencing_token, s->owner});
        }
        lk.unlock();
        for (const auto& s : expired) report_deadline(s);
        if (items.empty()) {
            lk.lock();
            continue;
        }
        lk.lock();
        ++ticks_;
        lk.unlock();

        const auto start = clock_->now();
        bool known = false;
        ErrorKind error = ErrorKind::other;
        std::vector<Renewed> result;
        try {
            result = renew_(items);
            known = true;
        } catch (const Error& e) {
            // Outcome unknown: the statement is idempotent (it matches the
            // acquisition's fencing token, not the record version), so it is
            // retried until it succeeds or the deadline timer gives up.
            error = e.kind();
        } catch (...) {
        }
        const auto answered = clock_->now();
        {
            std::lock_guard clk(mu_);
            works_until_ = known ? answered + kWarmFor : TimePoint::min();
        }
        if (known) {
            // Replies are matched by (name, fencing token): two acquisitions of
            // one name by this client are two different locks.
            std::map<std::pair<std::string, std::int64_t>, std::optional<std::int64_t>> still_held;
            for (auto& r : result) {
                still_held.emplace(std::make_pair(std::move(r.name), r.fencing_token),
                                   r.record_version_number);
            }
            for (const auto& s : batch) {
                std::int64_t token;
                {
                    std::lock_guard slk(s->mu);
                    token = s->fencing_token;
                }
                auto it = still_held.find(std::make_pair(s->name, token));
                if (it == still_held.end()) {
                    report(s, LossCause::taken_over,
                           "taken over: the row no longer carries this holder's fencing token");
                } else if (!it->second) {
                    // Locked by another transaction (a fenced write, a takeover
                    // under way): unknown, try again soon.
                    s->renewal_unknown(std::nullopt, answered + renewal_retry_pause(s->timing));
                } else if (s->renewed(start, *it->second, answered) == LockState::Renewal::expired) {
                    report_deadline(s);
                }
            }
        } else {
            for (const auto& s : batch) {
                s->renewal_unknown(error, answered + renewal_retry_pause(s->timing));
            }
        }
        lk.lock();
    }
}

void Renewer::report(const std::shared_ptr<LockState>& s, LossCause cause,
                     const std::string& reason) {
    {
        std::lock_guard slk(s->mu);
        if (s->loss_reported) return;  // the other thread got there first
        s->loss_reported = true;
    }
    on_lost_(s, cause, reason);
}

void Renewer::report_deadline(const std::shared_ptr<LockState>& s) {
    report(s, s->deadline_cause(),
           "renew deadline passed: no successful renewal for " +
               std::to_string(s->timing.renew_deadline.count()) + "ms");
}

void Renewer::deadline_loop() {
    std::unique_lock lk(mu_);
    while (!stopping_) {
        const auto now = clock_->now();
        auto earliest = TimePoint::max();
        std::vector<std::shared_ptr<LockState>> expired;
        for (const auto& [_, s] : held_) {
            std::lock_guard slk(s->mu);
            if (s->released) continue;
            if (s->valid_until <= now) {
                expired.push_back(s);
            } else {
                earliest = std::min(earliest, s->valid_until);
            }
        }
        if (!expired.empty()) {
            lk.unlock();
            for (const auto& s : expired) report_deadline(s);
            lk.lock();
            continue;
        }
        deadline_wakes_at_ = earliest;
        clock_->wait_until(deadline_cv_, lk, earliest);
        deadline_wakes_at_ = TimePoint::min();
    }
}

}  // namespace pgelect::detail
