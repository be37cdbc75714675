#include "pgelect/elector.hpp"

#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "lock/names.hpp"
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
        {
            std::lock_guard lk(mu_);
            stopping_ = true;
            attempt_stop_.request_stop();
        }
        cv_.notify_all();
        if (thread_.joinable() && std::this_thread::get_id() != thread_.get_id()) thread_.join();
    }

    void resign(Duration cooldown) {
        {
            std::lock_guard lk(mu_);
            if (cooldown > Duration::zero()) {
                cooldown_until_ = Clock::now() + cooldown;
                attempt_stop_.request_stop();  // a follower stops campaigning too
            }
            if (term_) resign_requested_ = true;
        }
        cv_.notify_all();
    }

    bool is_leader() const {
        std::lock_guard lk(mu_);
        return term_ && !term_->lock.is_released() && !term_->ended.stop_requested();
    }

    std::optional<Leadership> leadership() const {
        std::lock_guard lk(mu_);
        if (!term_ || term_->lock.is_released()) return std::nullopt;
        return term_->leadership;
    }

    bool wait_for_leadership(Duration timeout) const {
        std::unique_lock lk(mu_);
        cv_.wait_for(lk, timeout, [&] { return term_ && !term_->lock.is_released(); });
        return term_ && !term_->lock.is_released();
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
        }
        if (term && !term->lock.is_released()) term->lock.set_data(data);
    }

    bool healthy() const {
        std::lock_guard lk(mu_);
        if (!term_) return true;
        if (timing_.heartbeat_interval.count() == 0) return !term_->lock.is_released();
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
            try {
                lock.emplace(client_.acquire(options_.group, acquire_options(), attempt));
                backoff = std::chrono::milliseconds(100);
            } catch (const NotAcquiredError&) {
                continue;  // stop(), or resign() with a cooldown
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
                lead(std::move(*lock));
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

    void lead(Lock lock) {
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
        {
            std::lock_guard lk(mu_);
            term_ = term;
        }
        cv_.notify_all();

        observed_ = std::make_pair(identity_, info.fencing_token);
        observed_valid_ = true;
        self_.leader_changed(LeaderInfo{identity_, term->lock.data(), info.fencing_token, info.acquired_at});
        self_.become_leader(term->leadership);

        bool resigned = false;
        {
            std::unique_lock lk(mu_);
            cv_.wait(lk, [&] {
                return stopping_ || resign_requested_ || term->ended.stop_requested();
            });
            resigned = resign_requested_;
            resign_requested_ = false;
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
        }
        observed_valid_ = false;
        self_.lost_leadership(loss);
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
    bool resign_requested_ = false;
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
