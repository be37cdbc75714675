// One candidate of the split-brain checker.  It campaigns for a group, either
// with an Elector or (MODE lock) with a raw Lock from LockClient::acquire, and
// keeps two records on the steady clock (CLOCK_MONOTONIC, shared by all
// processes of the machine):
//
//   OUTPUT_FILE: the terms it reports about itself
//     B <fencing token> <start ns>        when it becomes leader
//     L <fencing token> <end ns> <reason> when the term ends (end = min(now, valid until))
//   BELIEF_FILE: what every belief API said, sampled about once a millisecond by
//     its own thread (belief_log.hpp): is_leader(), leadership(),
//     wait_for_leadership(0), the term's stop token, or !Lock::is_released();
//   BELIEF_FILE.clock: the same samples restricted to the APIs that read the
//     clock when asked (all but the stop token, which the deadline thread fires).
//
// SIGUSR1 makes it resign (a raw lock: release); SIGUSR2 hangs a stop callback
// that sleeps 3 s on the current term (and writes "C <token> <ns>"); SIGTERM
// stops it.
//
//   splitbrain_node elector|lock TABLE GROUP IDENTITY OUTPUT_FILE BELIEF_FILE
//   (connection from PG* variables)
#include <pgelect/pgelect.hpp>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "belief_log.hpp"
#include "timing.hpp"

namespace {
using namespace std::chrono_literals;
using pgelect::test::splitbrain::steady_ns;
namespace sb = pgelect::test::splitbrain;

volatile std::sig_atomic_t g_resign = 0;
volatile std::sig_atomic_t g_slow_stop = 0;
volatile std::sig_atomic_t g_stop = 0;


long long ns(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

class Report {
public:
    explicit Report(FILE* out) : out_(out) {}
    void began(std::int64_t token) {
        std::lock_guard lk(mu_);
        std::fprintf(out_, "B %lld %lld\n", static_cast<long long>(token), steady_ns());
        std::fflush(out_);
    }
    void hung_callback(std::int64_t token) {
        std::lock_guard lk(mu_);
        std::fprintf(out_, "C %lld %lld\n", static_cast<long long>(token), steady_ns());
        std::fflush(out_);
    }
    void ended(std::int64_t token, long long end, std::string_view reason) {
        std::lock_guard lk(mu_);
        std::fprintf(out_, "L %lld %lld %.*s\n", static_cast<long long>(token), end,
                     static_cast<int>(reason.size()), reason.data());
        std::fflush(out_);
    }

private:
    std::mutex mu_;
    FILE* out_;
};

// The term as seen by the stop token handed to become_leader.
class CapturedTerm {
public:
    void set(std::int64_t token, std::stop_token stop) {
        std::lock_guard lk(mu_);
        token_ = token;
        stop_ = std::move(stop);
    }
    // The term's token while its stop token has not fired, else 0.
    std::int64_t live_token() const {
        std::lock_guard lk(mu_);
        return stop_.stop_possible() && !stop_.stop_requested() ? token_ : 0;
    }
    // Ending the current term now blocks whoever ends it for kSlowStopCallback.
    // Returns the term's token, or 0 if there is no live term.
    std::int64_t hang_stop_callback() {
        std::stop_token stop;
        std::int64_t token = 0;
        {
            std::lock_guard lk(mu_);
            stop = stop_;
            token = token_;
        }
        if (!stop.stop_possible() || stop.stop_requested()) return 0;
        auto slow = std::make_unique<SlowCallback>(
            stop, +[] { std::this_thread::sleep_for(sb::kSlowStopCallback); });
        std::lock_guard lk(mu_);
        slow_.swap(slow);
        return token;
    }  // an earlier callback is destroyed here, outside mu_ (waiting for it if it runs)
    void clear() {
        std::unique_ptr<SlowCallback> slow;
        std::lock_guard lk(mu_);
        slow_.swap(slow);
    }

private:
    using SlowCallback = std::stop_callback<void (*)()>;
    mutable std::mutex mu_;
    std::int64_t token_ = 0;
    std::stop_token stop_;
    std::unique_ptr<SlowCallback> slow_;
};

// Samples until `done`, about once a millisecond; `ask` returns the mask of
// APIs that said "leader" and the token they named.
template <class Ask>
void sample_until(const std::atomic<bool>& done, sb::BeliefWriter& log,
                  sb::BeliefWriter& clock_log, Ask ask) {
    while (!done.load()) {
        const auto t0 = steady_ns();
        auto [mask, token] = ask();
        const auto t1 = steady_ns();
        log.sample(t0, t1, mask, token);
        clock_log.sample(t0, t1, mask & sb::kClockApis, token);
        std::this_thread::sleep_for(1ms);
    }
}

pgelect::LockClientOptions client_options(const char* table) {
    pgelect::LockClientOptions o;
    o.table = table;
    o.timing = {.lease_duration = sb::kLease * sb::timing_scale(),
                .renew_deadline = sb::kRenewDeadline * sb::timing_scale(),
                .heartbeat_interval = sb::kHeartbeat, .retry_interval = sb::kRetry};
    o.statement_timeout = sb::kStatementTimeout;
    // libpq's connect_timeout: on a loaded machine a new connection through
    // the proxy took over 2 s at times, and with a 2 s timeout every attempt
    // of every node failed for 25 s (no leader at all).
    o.connect_timeout = 5s;
    return o;
}

int run_elector(pgelect::LockClient& client, const char* group, const char* identity,
                Report& report, sb::BeliefWriter& belief,
                sb::BeliefWriter& clock_belief) {
    pgelect::ElectorOptions eo;
    eo.group = group;
    eo.identity = identity;
    eo.max_backoff = sb::kMaxBackoff;
    pgelect::Elector elector(client, eo);
    CapturedTerm captured;
    elector.become_leader.connect([&](const pgelect::Leadership& l) {
        captured.set(l.fencing_token, l.stop_token);
        report.began(l.fencing_token);
    });
    elector.lost_leadership.connect([&](const pgelect::LossInfo& l) {
        report.ended(l.fencing_token, ns(l.valid_until), pgelect::to_string(l.reason));
    });
    std::atomic<bool> sampled_enough{false};
    std::thread sampler([&] {
        sample_until(sampled_enough, belief, clock_belief, [&] {
            unsigned mask = 0;
            std::int64_t token = 0;
            if (elector.is_leader()) mask |= 1u << sb::kIsLeader;
            if (auto l = elector.leadership()) {
                mask |= 1u << sb::kLeadership;
                token = l->fencing_token;
            }
            if (elector.wait_for_leadership(0ms)) mask |= 1u << sb::kWaitForLeadership;
            if (auto t = captured.live_token()) {
                mask |= 1u << sb::kStopToken;
                token = t;
            }
            return std::pair{mask, token};
        });
    });
    elector.start();
    while (!g_stop) {
        if (g_slow_stop) {
            g_slow_stop = 0;
            if (const auto token = captured.hang_stop_callback()) report.hung_callback(token);
        }
        if (g_resign) {
            g_resign = 0;
            elector.resign();
        }
        std::this_thread::sleep_for(10ms);
    }
    elector.stop();
    sampled_enough = true;
    sampler.join();
    captured.clear();
    return 0;
}

// A raw lock: acquire, hold until lost or told to resign, release, again.
int run_lock(pgelect::LockClient& client, const char* group, const char* identity,
             Report& report, sb::BeliefWriter& belief,
                sb::BeliefWriter& clock_belief) {
    std::mutex mu;
    std::condition_variable cv;
    std::shared_ptr<pgelect::Lock> held;  // guarded by mu
    bool resign = false;                  // guarded by mu
    std::stop_source stopping;
    std::atomic<bool> sampled_enough{false};
    std::thread sampler([&] {
        sample_until(sampled_enough, belief, clock_belief, [&] {
            std::shared_ptr<pgelect::Lock> lock;
            {
                std::lock_guard lk(mu);
                lock = held;
            }
            if (!lock || lock->is_released()) return std::pair{0u, std::int64_t{0}};
            return std::pair{1u << sb::kLockHeld, lock->fencing_token()};
        });
    });
    std::thread campaign([&] {
        pgelect::AcquireOptions ao;
        ao.owner = identity;
        // Kept like the Elector's: a deleted row forgets its token, and the next
        // insert draws from the sequence, below a token a takeover by hand had
        // raised the row to.
        ao.keep_on_release = true;
        while (!stopping.stop_requested()) {
            std::shared_ptr<pgelect::Lock> lock;
            try {
                lock = std::make_shared<pgelect::Lock>(client.acquire(group, ao, stopping.get_token()));
            } catch (const pgelect::NotAcquiredError&) {
                continue;
            } catch (const pgelect::Error&) {
                std::this_thread::sleep_for(200ms);
                continue;
            }
            const auto token = lock->fencing_token();
            report.began(token);
            std::stop_callback wake(lock->lost_token(), [&] {
                { std::lock_guard l2(mu); }  // the waiter below is either waiting or will see it
                cv.notify_all();
            });
            std::unique_lock lk(mu);
            held = lock;
            resign = false;
            cv.wait(lk, [&] { return resign || stopping.stop_requested() || lock->is_released(); });
            const bool resigned = !lock->is_released();
            lk.unlock();
            long long end = std::min<long long>(steady_ns(), ns(lock->valid_until()));
            std::string reason(pgelect::to_string(lock->loss_cause()));
            if (resigned) {
                end = steady_ns();  // release() ends belief before its statement
                reason = "released";
                try {
                    lock->release();
                } catch (const pgelect::Error&) {
                }
            }
            report.ended(token, end, reason);
            {
                std::lock_guard l2(mu);
                held.reset();
            }
            if (resigned) std::this_thread::sleep_for(200ms);  // let a follower take it
        }
    });
    while (!g_stop) {
        if (g_resign) {
            g_resign = 0;
            {
                std::lock_guard lk(mu);
                resign = true;
            }
            cv.notify_all();
        }
        std::this_thread::sleep_for(10ms);
    }
    {
        std::lock_guard lk(mu);
        stopping.request_stop();
    }
    cv.notify_all();
    campaign.join();
    sampled_enough = true;
    sampler.join();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 7 || (std::string(argv[1]) != "elector" && std::string(argv[1]) != "lock")) {
        std::cerr << "usage: splitbrain_node elector|lock TABLE GROUP IDENTITY OUTPUT_FILE BELIEF_FILE\n";
        return 2;
    }
    std::signal(SIGUSR1, [](int) { g_resign = 1; });
    std::signal(SIGUSR2, [](int) { g_slow_stop = 1; });
    std::signal(SIGTERM, [](int) { g_stop = 1; });
    FILE* out = std::fopen(argv[5], "a");
    if (out == nullptr) return 2;
    sb::BeliefWriter belief(argv[6]);
    sb::BeliefWriter clock_belief(std::string(argv[6]) + ".clock");
    Report report(out);
    pgelect::LockClient client("", client_options(argv[2]));
    const int rc = std::string(argv[1]) == "lock"
                       ? run_lock(client, argv[3], argv[4], report, belief, clock_belief)
                       : run_elector(client, argv[3], argv[4], report, belief, clock_belief);
    std::fclose(out);
    return rc;
}
