// Runs what the renewal and deadline threads must not run themselves: the
// stop callbacks of a lost lock (user code, which may block) and the
// best-effort release after a loss.  Each job runs on an idle worker, or on a
// new one if every worker is busy, so one blocked callback never delays
// another lock's.  Workers are joined by stop().
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace pgelect::detail {

class Dispatcher {
public:
    Dispatcher() = default;
    ~Dispatcher() { stop(); }
    Dispatcher(const Dispatcher&) = delete;
    Dispatcher& operator=(const Dispatcher&) = delete;

    // Thread safety: all methods may be called from any thread.  After stop()
    // a job runs on the calling thread.
    void post(std::function<void()> job) {
        {
            std::lock_guard lk(mu_);
            if (!stopping_) {
                jobs_.push_back(std::move(job));
                if (idle_ < jobs_.size()) workers_.emplace_back([this] { work(); });
                cv_.notify_one();
                return;
            }
        }
        job();
    }

    // Runs what was posted, then joins every worker (a job that blocks forever
    // blocks this too).  Idempotent.
    void stop() {
        std::vector<std::thread> workers;
        {
            std::lock_guard lk(mu_);
            stopping_ = true;
            workers.swap(workers_);
        }
        cv_.notify_all();
        for (auto& w : workers) {
            if (w.joinable() && w.get_id() != std::this_thread::get_id()) {
                w.join();
            } else if (w.joinable()) {
                w.detach();  // stop() from a job: that worker finishes on its own
            }
        }
    }

private:
    void work() {
        std::unique_lock lk(mu_);
        for (;;) {
            ++idle_;
            cv_.wait(lk, [&] { return stopping_ || !jobs_.empty(); });
            --idle_;
            if (jobs_.empty()) return;  // stopping, nothing left
            auto job = std::move(jobs_.front());
            jobs_.pop_front();
            lk.unlock();
            try {
                job();
            } catch (...) {
            }
            lk.lock();
        }
    }

    // guarded by mu_
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    std::size_t idle_ = 0;
    bool stopping_ = false;
    std::vector<std::thread> workers_;
};

}  // namespace pgelect::detail
