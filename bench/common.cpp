#include "common.hpp"

#include <cmath>
#include <cstdio>

namespace bench {

Config make_config(bool quick) {
    Config c;
    c.quick = quick;
    if (quick) {
        c.cycle_rounds = 5;
        c.cycle_slice_s = 0.5;
        c.cycle_diagnostics = false;
        c.renew_heartbeat = milliseconds(250);
        c.renew_window_s = 0.8;
        c.renew_client_runs = 3;
        c.baseline_tick_reps_10k = 1;
        c.failover_trials = 10;
        c.handoff_trials = 100;
        c.baseline_handoff_trials = 5;
        c.waiter_window_ticks = 33;
        c.waiter_settle_s = 0.5;
        c.global_limit_s = 52;
    }
    return c;
}

void progress(const std::string& msg) {
    static const auto t0 = Clock::now();
    std::fprintf(stderr, "[bench %6.1fs] %s\n", s_between(t0, Clock::now()), msg.c_str());
    std::fflush(stderr);
}

std::string fmt(double v, int prec) {
    if (!std::isfinite(v)) return "n/a";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", prec, v);
    return buf;
}

pgelect::LeaseTiming timing(milliseconds lease, milliseconds deadline, milliseconds heartbeat,
                            milliseconds retry) {
    pgelect::LeaseTiming t;
    t.lease_duration = lease;
    t.renew_deadline = deadline;
    t.heartbeat_interval = heartbeat;
    t.retry_interval = retry;
    return t;
}

pgelect::LockClientOptions client_options(const std::string& table, pgelect::LeaseTiming t,
                                          std::size_t pool) {
    pgelect::LockClientOptions o;
    o.table = table;
    o.timing = t;
    o.pool_size = pool;
    return o;
}

std::future<Clock::time_point> contend(pgelect::LockClient& client, const std::string& name,
                                       std::stop_source& stop) {
    return std::async(std::launch::async, [&client, name, token = stop.get_token()]() -> Clock::time_point {
        pgelect::Lock l = client.acquire(name, {}, token);
        const auto t = Clock::now();
        try {
            l.release();
        } catch (const std::exception&) {
        }
        return t;
    });
}

std::optional<Clock::time_point> await_contender(std::future<Clock::time_point>& fut, std::stop_source& stop,
                                                 Clock::time_point deadline) {
    if (fut.wait_until(deadline) == std::future_status::ready) return fut.get();  // may throw
    stop.request_stop();
    try {
        fut.get();
    } catch (...) {
    }
    return std::nullopt;
}

}  // namespace bench
