// say(): pgelect's messages, written to stderr by a thread of their own.
//
// stderr may be a pipe nobody reads (a stopped log shipper, a full terminal
// buffer): a blocking write there must never delay stopping the command, so
// no thread that supervises anything writes to stderr itself.  Lines wait in a
// bounded queue; when it is full, new lines are dropped and counted, and the
// count is reported once stderr drains.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "cli/common.hpp"

namespace pgelect::cli {
namespace {

class StderrWriter {
  public:
    static StderrWriter& instance() {
        // Never destroyed: a thread of the library may still log during exit.
        static StderrWriter* writer = new StderrWriter;
        return *writer;
    }

    void push(std::string line) {
        std::lock_guard lk(mu_);
        if (queued_bytes_ + line.size() > kMaxQueuedBytes) {
            ++dropped_;
            return;
        }
        queued_bytes_ += line.size();
        lines_.push_back(std::move(line));
        start_locked();
        cv_.notify_all();
    }

    void flush(std::chrono::milliseconds timeout) {
        std::unique_lock lk(mu_);
        cv_.wait_for(lk, timeout, [&] { return lines_.empty() && !writing_; });
    }

  private:
    static constexpr std::size_t kMaxQueuedBytes = 1 << 20;

    void start_locked() {
        if (started_) return;
        started_ = true;
        // The thread must not take signals meant for the signalfd of `run`
        // (it may be started before they are blocked): it blocks them all.
        sigset_t all, old;
        sigfillset(&all);
        ::pthread_sigmask(SIG_SETMASK, &all, &old);
        std::thread([this] { loop(); }).detach();
        ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    }

    void loop() {
        std::unique_lock lk(mu_);
        for (;;) {
            cv_.wait(lk, [&] { return !lines_.empty() || dropped_ > 0; });
            std::string line;
            if (dropped_ > 0 && queued_bytes_ < kMaxQueuedBytes / 2) {
                line = "pgelect: " + std::to_string(dropped_) +
                       " message(s) dropped: stderr was not being read\n";
                dropped_ = 0;
            } else if (!lines_.empty()) {
                line = std::move(lines_.front());
                lines_.pop_front();
                queued_bytes_ -= line.size();
            } else {
                continue;
            }
            writing_ = true;
            lk.unlock();
            // One write per line, so that lines of processes sharing stderr do not interleave.
            if (::write(STDERR_FILENO, line.data(), line.size()) < 0) {
                // Nothing sensible to do when stderr is gone.
            }
            lk.lock();
            writing_ = false;
            cv_.notify_all();
        }
    }

    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::string> lines_;  // guarded by mu_
    std::size_t queued_bytes_ = 0;   // guarded by mu_
    std::size_t dropped_ = 0;        // guarded by mu_
    bool writing_ = false;           // guarded by mu_
    bool started_ = false;           // guarded by mu_
};

}  // namespace

void say(const std::string& message, const std::string& tag) {
    StderrWriter::instance().push((tag.empty() ? "pgelect: " : "pgelect[" + tag + "]: ") +
                                  message + "\n");
}

void flush_messages(std::chrono::milliseconds timeout) {
    StderrWriter::instance().flush(timeout);
}

}  // namespace pgelect::cli
