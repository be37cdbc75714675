// One candidate of the split-brain checker.  It campaigns for a group and
// appends every leadership interval it believes in to a file, on the steady
// clock (CLOCK_MONOTONIC, shared by all processes of the machine):
//   B <fencing token> <start ns>        when it becomes leader
//   L <fencing token> <end ns> <reason> when the term ends (end = min(now, valid until))
// SIGUSR1 makes it resign; SIGTERM stops it.
//
//   splitbrain_node TABLE GROUP IDENTITY OUTPUT_FILE    (connection from PG* variables)
#include <pgelect/pgelect.hpp>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <thread>

namespace {
volatile std::sig_atomic_t g_resign = 0;
volatile std::sig_atomic_t g_stop = 0;

long long ns(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::cerr << "usage: splitbrain_node TABLE GROUP IDENTITY OUTPUT_FILE\n";
        return 2;
    }
    std::signal(SIGUSR1, [](int) { g_resign = 1; });
    std::signal(SIGTERM, [](int) { g_stop = 1; });
    FILE* out = std::fopen(argv[4], "a");
    if (out == nullptr) return 2;
    using namespace std::chrono_literals;
    pgelect::LockClientOptions o;
    o.table = argv[1];
    o.timing = {.lease_duration = 1000ms, .renew_deadline = 700ms, .heartbeat_interval = 150ms,
                .retry_interval = 100ms};
    o.statement_timeout = 600ms;
    o.connect_timeout = 2s;
    pgelect::LockClient client("", o);
    pgelect::ElectorOptions eo;
    eo.group = argv[2];
    eo.identity = argv[3];
    eo.max_backoff = 300ms;
    pgelect::Elector elector(client, eo);
    elector.become_leader.connect([&](const pgelect::Leadership& l) {
        std::fprintf(out, "B %lld %lld\n", static_cast<long long>(l.fencing_token),
                     ns(std::chrono::steady_clock::now()));
        std::fflush(out);
    });
    elector.lost_leadership.connect([&](const pgelect::LossInfo& l) {
        std::fprintf(out, "L %lld %lld %s\n", static_cast<long long>(l.fencing_token),
                     ns(l.valid_until), std::string(pgelect::to_string(l.reason)).c_str());
        std::fflush(out);
    });
    elector.start();
    while (!g_stop) {
        if (g_resign) {
            g_resign = 0;
            elector.resign();
        }
        std::this_thread::sleep_for(10ms);
    }
    elector.stop();
    std::fclose(out);
    return 0;
}
