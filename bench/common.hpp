// Shared by every part of pgelect_bench: the run's configuration, clock helpers,
// progress output, scope guards and the pgelect client options the phases use.
#pragma once

#include <pgelect/pgelect.hpp>

#include <pqxx/pqxx>

#include <atomic>
#include <chrono>
#include <future>
#include <limits>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>

namespace bench {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using namespace std::chrono_literals;

inline const double kNaN = std::numeric_limits<double>::quiet_NaN();

inline double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}
inline double s_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

struct Config {
    bool quick = false;
    std::string dsn;
    int cycle_rounds = 10;              // phase 1: alternating slices per implementation
    double cycle_slice_s = 1.0;
    bool cycle_diagnostics = true;      // phase 1: also replay pgelect's SQL / pglock's transactions
    milliseconds renew_heartbeat{1000}; // phase 2
    double renew_window_s = 3.5;
    int renew_client_runs = 7;
    int baseline_tick_reps_10k = 3;
    int failover_trials = 30;           // phase 3
    int handoff_trials = 300;           // phase 4
    int baseline_handoff_trials = 20;
    milliseconds baseline_lease{1000};
    int waiters = 100;                  // phase 5
    int waiter_clients = 10;
    int waiter_window_ticks = 165;      // holder renewals per window (multiple of 33)
    double waiter_settle_s = 1.0;
    double global_limit_s = 540;
};

Config make_config(bool quick);

// "[bench   12.3s] msg" on stderr.
void progress(const std::string& msg);
// Fixed-point with `prec` decimals, "n/a" if not finite.
std::string fmt(double v, int prec = 2);

// A quoted SQL identifier (the bench's table names need no escaping).
inline std::string qid(const std::string& ident) { return "\"" + ident + "\""; }

inline std::unique_ptr<pqxx::connection> connect(const Config& cfg) {
    return std::make_unique<pqxx::connection>(cfg.dsn);
}

// Requests stop on scope exit, so that a future whose thread waits in acquire() never
// blocks its destructor forever.  Declare it after the future it protects.
struct StopOnExit {
    std::stop_source& source;
    ~StopOnExit() { source.request_stop(); }
};
struct FlagOnExit {
    std::atomic<bool>& flag;
    ~FlagOnExit() { flag.store(true); }
};

pgelect::LeaseTiming timing(milliseconds lease, milliseconds deadline, milliseconds heartbeat,
                            milliseconds retry);
pgelect::LockClientOptions client_options(const std::string& table, pgelect::LeaseTiming t,
                                          std::size_t pool = 4);

// A contender on another thread: acquire(name) on `client` until it holds or `stop`
// fires; returns the instant it held (then releases at once).
std::future<Clock::time_point> contend(pgelect::LockClient& client, const std::string& name,
                                       std::stop_source& stop);
// The contender's instant, or nullopt if it did not hold by `deadline` (it is then
// stopped and joined) or failed.
std::optional<Clock::time_point> await_contender(std::future<Clock::time_point>& fut, std::stop_source& stop,
                                                 Clock::time_point deadline);

}  // namespace bench
