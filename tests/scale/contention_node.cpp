// One candidate process of the contention test: 100 electors (groups g000..g099)
// on one LockClient.  Every leadership interval it believes in goes to a file, on
// the steady clock (CLOCK_MONOTONIC, shared by all processes of the machine), in
// the split-brain checker's conventions:
//   B <group> <fencing token> <start ns>         become_leader fired
//   L <group> <fencing token> <end ns> <reason>  the term ended (end = LossInfo::valid_until)
//   R <group> <ns>                               resign() is about to be called
// It reads commands from stdin: "resign <index>" resigns that group (with a
// cooldown) if this process leads it.  End of input or SIGTERM stops it.
//
//   contention_node PROCESS_INDEX TABLE OUTPUT_FILE    (connection from PG* variables)
#include <pgelect/pgelect.hpp>

#include <poll.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "contention.hpp"

namespace {

namespace c = pgelect::test::contention;

volatile std::sig_atomic_t g_stop = 0;

long long ns(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// Appends one line at a time; slots of 100 electors write concurrently.
class Log {
public:
    explicit Log(FILE* out) : out_(out) {}
    void line(const std::string& text) {
        std::lock_guard lk(mu_);
        std::fputs(text.c_str(), out_);
        std::fputc('\n', out_);
        std::fflush(out_);
    }

private:
    std::mutex mu_;
    FILE* out_;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::cerr << "usage: contention_node PROCESS_INDEX TABLE OUTPUT_FILE\n";
        return 2;
    }
    std::signal(SIGTERM, [](int) { g_stop = 1; });
    FILE* out = std::fopen(argv[3], "a");
    if (out == nullptr) return 2;
    Log log(out);
    const std::string identity = c::identity(std::stoi(argv[1]));

    pgelect::LockClientOptions o;
    o.table = argv[2];
    o.pool_size = c::kPoolSize;
    o.timing = {.lease_duration = c::kLease,
                .renew_deadline = c::kRenewDeadline,
                .heartbeat_interval = c::kHeartbeat,
                .retry_interval = c::kRetry};
    pgelect::LockClient client("", o);
    // Renewals that failed or left a held lock out go to stderr: they explain
    // a term that ended by its deadline.
    client.renewal_finished.connect([](const pgelect::RenewalReport& r) {
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(r.elapsed).count();
        const long long at = ns(std::chrono::steady_clock::now());
        if (!r.ok) {
            std::fprintf(stderr, "%lld renewal of %zu locks failed after %lld ms: %s\n", at,
                         r.names.size(), static_cast<long long>(ms),
                         r.error ? std::string(pgelect::to_string(*r.error)).c_str() : "unknown");
        } else if (r.still_held.size() < r.names.size()) {
            std::fprintf(stderr, "%lld renewal kept %zu of %zu locks after %lld ms\n", at,
                         r.still_held.size(), r.names.size(), static_cast<long long>(ms));
        } else if (ms > 1000) {
            std::fprintf(stderr, "%lld renewal of %zu locks took %lld ms\n", at, r.names.size(),
                         static_cast<long long>(ms));
        }
    });

    std::vector<std::unique_ptr<pgelect::Elector>> electors;
    for (int g = 0; g < c::kGroups; ++g) {
        pgelect::ElectorOptions eo;
        eo.group = c::group_name(g);
        eo.identity = identity;
        eo.max_backoff = std::chrono::milliseconds(500);
        auto e = std::make_unique<pgelect::Elector>(client, eo);
        e->become_leader.connect([&log](const pgelect::Leadership& l) {
            const auto now = std::chrono::steady_clock::now();
            log.line("B " + l.group + " " + std::to_string(l.fencing_token) + " " +
                     std::to_string(ns(now)));
        });
        e->lost_leadership.connect([&log](const pgelect::LossInfo& l) {
            log.line("L " + l.group + " " + std::to_string(l.fencing_token) + " " +
                     std::to_string(ns(l.valid_until)) + " " +
                     std::string(pgelect::to_string(l.reason)));
        });
        electors.push_back(std::move(e));
    }
    for (auto& e : electors) e->start();

    std::string pending;
    while (!g_stop) {
        pollfd p{0, POLLIN, 0};
        if (::poll(&p, 1, 20) <= 0) continue;
        char buf[256];
        const ssize_t n = ::read(0, buf, sizeof buf);
        if (n <= 0) break;  // the checker closed our input: stop
        pending.append(buf, static_cast<std::size_t>(n));
        for (std::size_t nl; (nl = pending.find('\n')) != std::string::npos;
             pending.erase(0, nl + 1)) {
            std::istringstream cmd(pending.substr(0, nl));
            std::string verb;
            int g = -1;
            cmd >> verb >> g;
            if (verb != "resign" || g < 0 || g >= c::kGroups) continue;
            auto& e = *electors[static_cast<std::size_t>(g)];
            if (!e.is_leader()) continue;
            log.line("R " + e.group() + " " + std::to_string(ns(std::chrono::steady_clock::now())));
            e.resign(c::kResignCooldown);
        }
    }
    for (auto& e : electors) e->stop();
    electors.clear();
    std::fclose(out);
    return 0;
}
