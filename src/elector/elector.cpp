#include "pgelect/elector.hpp"

#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "lock/names.hpp"
#include "lock/timing_rules.hpp"
#include "pgelect/log.hpp"

namespace pgelect {

std::string_view to_string(LossReason reason) noexcept {
    switch (reason) {
        case LossReason::resigned: return "resigned";
        case LossReason::stopped: return "stopped";
        case LossReason::renewal_failed: return "renewal_failed";
        case LossReason::deadline_passed: return "deadline_passed";
        case LossReason::lock_taken: return "lock_taken";
        case LossReason::database_unavailable: return "database_unavailable";
    }
    return "stopped";
}

namespace detail {

void SafeCombiner::log_slot_error(const char* what) {
    log(LogLevel::error, std::string("a signal slot threw: ") + what);
}

namespace {
using Clock = std::chrono::steady_clock;

LossReason reason_of(LossCause cause) {
    switch (cause) {
        case LossCause::taken_over: return LossReason::lock_taken;
        case LossCause::deadline_passed: return LossReason::deadline_passed;
        case LossCause::renewal_failed: return LossReason::renewal_failed;
        case LossCause::database_unavailable: return LossReason::database_unavailable;
        case LossCause::client_closed: return LossReason::stopped;
        case LossCause::none:
        case LossCause::released: return LossReason::stopped;
    }
    return LossReason::stopped;
}
}  // namespace

// Campaign failures as warnings: the first of a kind at once, then the same
// message at most once a minute with the number held back, so that an outage
// of hours does not write a line per retry.
class FailureLog {
public:
    void report(const std::string& group, const std::string& message) {
        const auto now = Clock::now();
        if (message == last_ && now - logged_at_ < kRepeatEvery) {
            ++held_back_;
            return;
        }
        std::string line = "campaign for \"" + group + "\": " + message;
        if (held_back_ > 0) {
            line += " (" + std::to_string(held_back_) + " more failures since the last message)";
        }
        log(LogLevel::warning, line);
        last_ = message;
        logged_at_ = now;
        held_back_ = 0;
    }

private:
    static constexpr auto kRepeatEvery = std::chrono::minutes(1);
    std::string last_;
    Clock::time_point logged_at_{};
    long held_back_ = 0;
};

// One term: the lease and what the slots were told about it.
struct Term {
    Term(Lock l, Leadership info) : lock(std::move(l)), leadership(std::move(info)) {}
    Lock lock;
    Leadership leadership;
    std::stop_source ended;  // leadership.stop_token
    bool resign_requested = false;  // guarded by ElectorImpl::mu_: resign() of this term

    // The one answer to "do I lead?": false once the term was ended (resign,
    // stop, loss) or the lease is past its renew deadline, and never true again.
    bool believed() const { return !ended.stop_requested() && !lock.is_released(); }
};

class ElectorImpl {
public:
    ElectorImpl(Elector& self, LockClient& client, ElectorOptions o)
        : self_(self),
          client_(client),
          options_(std::move(o)),
          identity_(options_.identity.empty() ? default_identity() : options_.identity),
          timing_(options_.timing.value_or(client.options().timing)),
          data_(options_.data) {
        validate_lock_name(options_.group);
        validate_owner(identity_);
        validate_timing(timing_);
        detail::validate_renewal_fits(timing_, client.options());
        if (options_.max_backoff <= Duration::zero()) {
            throw InvalidArgumentError("invalid elector options: max_backoff must be positive");
        }
    }

    void start() {
        std::lock_guard lk(mu_);
        if (started_ || stopping_) return;
        started_ = true;
        thread_ = std::thread([this] { run(); });
    }

    void stop() {
        std::shared_ptr<Term> term;
        {
            std::lock_guard lk(mu_);
            stopping_ = true;
            attempt_stop_.request_stop();
            term = term_;
        }
        // Belief ends here, before the campaign thread gives the lease up.
        if (term) term->ended.request_stop();
        cv_.notify_all();
        if (thread_.joinable() && std::this_thread::get_id() != thread_.get_id()) thread_.join();
    }

    void resign(Duration cooldown) {
        std::shared_ptr<Term> term;
        {
            std::lock_guard lk(mu_);
            if (cooldown > Duration::zero()) {
                cooldown_until_ = std::max(cooldown_until_, Clock::now() + cooldown);
                attempt_stop_.request_stop();  // a follower stops campaigning too
            }
            // Only the term running now: a resign that arrives while that term
            // is being released must not end the next one.
            if (term_ && !term_->ended.stop_requested()) {
                term_->resign_requested = true;
                term = term_;
            }
        }
        // Belief ends here, before the campaign thread sends the release.
        if (term) term->ended.request_stop();
        cv_.notify_all();
    }

    bool is_leader() const {
        std::lock_guard lk(mu_);
        return term_ && term_->believed();
    }

    std::optional<Leadership> leadership() const {
        std::lock_guard lk(mu_);
        if (!term_ || !term_->believed()) return std::nullopt;
        return term_->leadership;
    }

    bool wait_for_leadership(Duration timeout) const {
        std::unique_lock lk(mu_);
        cv_.wait_for(lk, timeout, [&] { return term_ && term_->believed(); });
        return term_ && term_->believed();
    }

    std::optional<LeaderInfo> leader() const {
        try {
            const LockInfo row = client_.get(options_.group);
            if (!row.held()) return std::nullopt;
            return LeaderInfo{row.owner.value_or(""), row.data.value_or(""),
                              row.fencing_token.value_or(0), row.acquired_at};
        } catch (const NotFoundError&) {
            return std::nullopt;
        }
    }

    void set_data(const std::string& data) {
        std::shared_ptr<Term> term;
        {
            std::lock_guard lk(mu_);
            data_ = data;
            term = term_;
            // A waiting campaign restarts, so the term it wins carries the new data.
            if (!term) attempt_stop_.request_stop();
        }
        if (term && term->believed()) term->lock.set_data(data);
    }

    bool healthy() const {
        std::lock_guard lk(mu_);
        if (!term_) return true;
        if (timing_.heartbeat_interval.count() == 0) return term_->believed();
        const auto last_renewal = term_->lock.valid_until() - timing_.renew_deadline;
        return Clock::now() - last_renewal <= 2 * timing_.heartbeat_interval;
    }

    const std::string& group() const { return options_.group; }
    const std::string& identity() const { return identity_; }

private:
    void run() {
        auto backoff = std::chrono::milliseconds(100);
        std::mt19937 rng(std::random_device{}());
        FailureLog failures;
        for (;;) {
            std::stop_token attempt;
            {
                std::unique_lock lk(mu_);
                if (stopping_) break;
                if (Clock::now() < cooldown_until_) {
                    cv_.wait_until(lk, cooldown_until_, [&] { return stopping_; });
                    continue;
                }
                attempt_stop_ = std::stop_source();
                attempt = attempt_stop_.get_token();
            }
            std::optional<Lock> lock;
            std::string data;
            try {
                auto options = acquire_options();
                data = options.data.value_or("");
                lock.emplace(client_.acquire(options_.group, options, attempt));
                backoff = std::chrono::milliseconds(100);
            } catch (const NotAcquiredError&) {
                continue;  // stop(), resign() with a cooldown, or set_data()
            } catch (const Error& e) {
                // Database unreachable or similar: capped, jittered backoff.
                failures.report(options_.group, e.what());
                const auto pause = std::chrono::milliseconds(
                    std::uniform_int_distribution<long>(backoff.count() / 2, backoff.count())(rng));
                backoff = std::min(backoff * 2, std::chrono::duration_cast<std::chrono::milliseconds>(
                                                    options_.max_backoff));
                std::unique_lock lk(mu_);
                cv_.wait_for(lk, pause, [&] { return stopping_; });
                continue;
            }
            try {
                lead(std::move(*lock), data);
            } catch (const std::exception& e) {
                log(LogLevel::error, "campaign for \"" + options_.group + "\": " + e.what());
            }
        }
    }

    AcquireOptions acquire_options() {
        AcquireOptions o;
        {
            std::lock_guard lk(mu_);
            o.data = data_;
        }
        o.replace_data = true;
        o.keep_on_release = true;  // the row stays, showing the group even while leaderless
        o.timing = timing_;
        o.owner = identity_;
        o.observer = [this](const LockObservation& seen) { observe(seen); };
        return o;
    }

    // On the elector thread, while campaigning: report leader changes.
    void observe(const LockObservation& seen) {
        std::optional<std::pair<std::string, std::int64_t>> key;
        if (seen.held) key = std::make_pair(seen.owner, seen.fencing_token.value_or(0));
        if (observed_ == key && observed_valid_) return;
        std::optional<LeaderInfo> info;
        if (key) {
            try {
                info = leader();
            } catch (const Error&) {
                return;  // try again on the next read
            }
            if (!info || info->fencing_token != key->second) return;  // changed meanwhile
        }
        observed_ = key;
        observed_valid_ = true;
        self_.leader_changed(info);
    }

    // Gives up a lease whose term was never announced (stop() or resign()
    // came first): no signal, since lost_leadership pairs with become_leader.
    void give_up_unannounced(Term& term) {
        term.ended.request_stop();
        bool resigned = false;
        {
            std::lock_guard lk(mu_);
            resigned = term.resign_requested;
        }
        try {
            if (options_.release_on_stop || resigned) {
                term.lock.release();
            } else {
                term.lock.abandon();
            }
        } catch (const Error&) {
        }
    }

    void lead(Lock lock, const std::string& attempt_data) {
        Leadership info;
        info.group = options_.group;
        info.identity = identity_;
        info.table = client_.options().table;
        info.fencing_token = lock.fencing_token();
        info.acquired_at = std::chrono::system_clock::now();
        auto term = std::make_shared<Term>(std::move(lock), info);
        term->leadership.stop_token = term->ended.get_token();
        // The lease may be lost on the renewal or deadline thread: end the term there at once.
        std::stop_callback on_lost(term->lock.lost_token(), [this, term = term.get()] {
            term->ended.request_stop();
            { std::lock_guard lk(mu_); }  // the campaign thread is either waiting or will see it
            cv_.notify_all();
        });
        std::string data;
        {
            std::lock_guard lk(mu_);
            term_ = term;
            data = data_;
        }
        cv_.notify_all();
        if (data != attempt_data) {
            // set_data() ran between the attempt and the win.
            try {
                term->lock.set_data(data);
            } catch (const Error&) {
            }
        }

        observed_ = std::make_pair(identity_, info.fencing_token);
        observed_valid_ = true;
        self_.leader_changed(LeaderInfo{identity_, term->lock.data(), info.fencing_token, info.acquired_at});
        // become_leader only for a live term: not after stop(), resign() or a loss.
        if (!live(*term)) {
            give_up_unannounced(*term);
            std::lock_guard lk(mu_);
            term_.reset();
            observed_valid_ = false;
            stand_aside_after_resign(*term);
            return;
        }
        self_.become_leader(term->leadership);

        bool resigned = false;
        {
            std::unique_lock lk(mu_);
            cv_.wait(lk, [&] {
                return stopping_ || term->resign_requested || !term->believed();
            });
            resigned = term->resign_requested;
        }
        LossInfo loss;
        loss.group = options_.group;
        loss.identity = identity_;
        loss.fencing_token = info.fencing_token;
        loss.valid_until = term->lock.valid_until();
        const bool lost = term->lock.is_released();
        term->ended.request_stop();  // work tied to the term stops before the lease is given up
        // The term ends here: a follower may take over as soon as the release below commits.
        const auto ended_at = Clock::now();
        if (lost) {
            loss.reason = reason_of(term->lock.loss_cause());
            loss.message = term->lock.loss_reason();
        } else if (resigned || options_.release_on_stop) {
            loss.reason = resigned ? LossReason::resigned : LossReason::stopped;
            loss.message = resigned ? "resigned" : "stopped";
            try {
                term->lock.release();
            } catch (const Error& e) {
                loss.message += std::string(" (release failed: ") + e.what() + ")";
            }
        } else {
            loss.reason = LossReason::stopped;
            loss.message = "stopped; the lease is left to expire";
            term->lock.abandon();
        }
        loss.valid_until = std::min(loss.valid_until, ended_at);
        {
            std::lock_guard lk(mu_);
            term_.reset();
            stand_aside_after_resign(*term);
        }
        observed_valid_ = false;
        self_.lost_leadership(loss);
    }

    bool live(const Term& term) const {
        std::lock_guard lk(mu_);
        return !stopping_ && !term.resign_requested && term.believed();
    }

    // After a resign without a cooldown the resigner waits two poll intervals
    // before campaigning again, so a waiting follower (woken by NOTIFY, or by
    // its next poll) takes the lease instead of the resigner winning it back.
    // Called with mu_ held.
    void stand_aside_after_resign(const Term& term) {
        if (!term.resign_requested) return;
        cooldown_until_ = std::max(cooldown_until_, Clock::now() + 2 * timing_.retry_interval);
    }

    // constant after construction
    Elector& self_;
    LockClient& client_;
    const ElectorOptions options_;
    const std::string identity_;
    const LeaseTiming timing_;

    // elector thread only
    std::optional<std::pair<std::string, std::int64_t>> observed_;
    bool observed_valid_ = false;

    // guarded by mu_
    mutable std::mutex mu_;
    mutable std::condition_variable cv_;
    std::string data_;
    bool started_ = false;
    bool stopping_ = false;
    Clock::time_point cooldown_until_{};
    std::stop_source attempt_stop_;
    std::shared_ptr<Term> term_;
    std::thread thread_;
};

}  // namespace detail

Elector::Elector(LockClient& client, ElectorOptions options)
    : impl_(std::make_shared<detail::ElectorImpl>(*this, client, std::move(options))) {}

Elector::~Elector() { impl_->stop(); }

void Elector::start() { impl_->start(); }
void Elector::stop() { impl_->stop(); }
void Elector::resign(Duration cooldown) { impl_->resign(cooldown); }
bool Elector::is_leader() const { return impl_->is_leader(); }
std::optional<Leadership> Elector::leadership() const { return impl_->leadership(); }
bool Elector::wait_for_leadership(Duration timeout) const {
    return impl_->wait_for_leadership(timeout);
}
std::optional<LeaderInfo> Elector::leader() const { return impl_->leader(); }
void Elector::set_data(const std::string& data) { impl_->set_data(data); }
bool Elector::healthy() const { return impl_->healthy(); }
const std::string& Elector::group() const { return impl_->group(); }
const std::string& Elector::identity() const { return impl_->identity(); }

}  // namespace pgelect
