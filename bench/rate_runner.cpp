#include "rate_runner.hpp"

#include <sys/resource.h>

#include "common.hpp"

namespace bench {
namespace {

std::int64_t sum(const std::vector<std::atomic<std::int64_t>>& v) {
    std::int64_t s = 0;
    for (const auto& x : v) s += x.load();
    return s;
}

// Voluntary + involuntary context switches of the process or of the calling thread.
std::int64_t switches(int who) {
    rusage r{};
    getrusage(who, &r);
    return r.ru_nvcsw + r.ru_nivcsw;
}

}  // namespace

RateRunner::RateRunner(int threads, const std::function<std::function<void()>(int)>& make)
    : n_(threads), counted_(threads), executed_(threads) {
    for (int i = 0; i < threads; ++i) work_.push_back(make(i));
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this, i] { loop(i); });
    std::unique_lock lk(mu_);
    cv_.wait_until(lk, Clock::now() + 60s, [&] { return idle_ == n_; });
}

RateRunner::~RateRunner() {
    {
        std::lock_guard lk(mu_);
        quit_ = true;
    }
    running_.store(false);
    cv_.notify_all();
    for (auto& t : threads_) t.join();
}

bool RateRunner::slice(double seconds) {
    const std::int64_t before = sum(counted_);
    const std::int64_t process0 = switches(RUSAGE_SELF), self0 = switches(RUSAGE_THREAD);
    {
        std::lock_guard lk(mu_);
        if (!error_.empty()) return false;
        idle_ = 0;
        running_.store(true);
        ++generation_;
    }
    cv_.notify_all();
    const auto t0 = Clock::now();
    const auto end = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    while (Clock::now() < end) {
        std::this_thread::sleep_for(std::min<Clock::duration>(5ms, end - Clock::now()));
    }
    running_.store(false);
    const auto t1 = Clock::now();
    std::unique_lock lk(mu_);
    if (!cv_.wait_until(lk, Clock::now() + 30s, [&] { return idle_ == n_; })) {
        error_ = "a worker did not finish its cycle within 30 s";
    }
    cycles_ += sum(counted_) - before;
    switches_ += (switches(RUSAGE_SELF) - process0) - (switches(RUSAGE_THREAD) - self0);
    seconds_ += s_between(t0, t1);
    return error_.empty();
}

double RateRunner::rate() const { return seconds_ > 0 ? static_cast<double>(cycles_) / seconds_ : kNaN; }

double RateRunner::switches_per_cycle() const {
    return cycles_ > 0 ? static_cast<double>(switches_) / static_cast<double>(cycles_) : kNaN;
}

std::int64_t RateRunner::executed() const { return sum(executed_); }

std::string RateRunner::error() const {
    std::lock_guard lk(mu_);
    return error_;
}

void RateRunner::fail(const std::string& e) {
    std::lock_guard lk(mu_);
    if (error_.empty()) error_ = e;
}

void RateRunner::loop(int i) {
    bool failed = false;
    try {
        for (int w = 0; w < 20; ++w) {
            work_[i]();
            executed_[i].fetch_add(1);
        }
    } catch (const std::exception& e) {
        failed = true;
        fail(e.what());
    }
    std::uint64_t seen = 0;
    for (;;) {
        {
            std::unique_lock lk(mu_);
            ++idle_;
            cv_.notify_all();
            cv_.wait(lk, [&] { return quit_ || generation_ != seen; });
            if (quit_) return;
            seen = generation_;
        }
        if (failed) continue;
        try {
            while (running_.load(std::memory_order_relaxed)) {
                work_[i]();
                executed_[i].fetch_add(1);
                if (running_.load(std::memory_order_relaxed)) counted_[i].fetch_add(1);
            }
        } catch (const std::exception& e) {
            failed = true;
            fail(e.what());
        }
    }
}

}  // namespace bench
