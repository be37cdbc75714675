// Throughput measurement: a fixed set of worker threads, each running one cycle
// function in a loop, measured in slices.  Several runners are measured in alternating
// slices so that drift of a shared, noisy machine hits all of them alike.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace bench {

class RateRunner {
public:
    // make(i) builds worker i's cycle function in the calling thread (connections are
    // opened before any clock starts); each worker then warms up with 20 cycles.
    RateRunner(int threads, const std::function<std::function<void()>(int)>& make);
    ~RateRunner();
    RateRunner(const RateRunner&) = delete;
    RateRunner& operator=(const RateRunner&) = delete;

    // Runs every worker for `seconds`; adds to rate().  False on an error.
    bool slice(double seconds);
    double rate() const;  // cycles per second over all slices
    // Context switches of the whole process except the measuring thread, per counted
    // cycle: the workers' own (about one per round trip) plus those of any thread they
    // wake, e.g. a library's background threads.  Other runners' workers sleep meanwhile.
    double switches_per_cycle() const;
    // Every cycle run, warm-up included (for statements per cycle).
    std::int64_t executed() const;
    std::string error() const;

private:
    void fail(const std::string& e);
    void loop(int i);

    const int n_;
    std::vector<std::function<void()>> work_;
    std::vector<std::thread> threads_;
    std::vector<std::atomic<std::int64_t>> counted_, executed_;
    std::atomic<bool> running_{false};
    mutable std::mutex mu_;
    std::condition_variable cv_;
    int idle_ = 0;                  // guarded by mu_
    std::uint64_t generation_ = 0;  // guarded by mu_
    bool quit_ = false;             // guarded by mu_
    std::string error_;             // guarded by mu_
    std::int64_t cycles_ = 0;       // main thread only
    std::int64_t switches_ = 0;
    double seconds_ = 0;
};

}  // namespace bench
