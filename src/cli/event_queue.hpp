// Hands events from other threads to a poll() loop: a queue plus an eventfd.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <deque>
#include <mutex>
#include <system_error>
#include <utility>

namespace pgelect::cli {

// push() may be called from any thread (it never blocks for long); take() and
// fd() belong to the thread that polls.
template <class Event>
class EventQueue {
  public:
    EventQueue() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
        if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    }
    ~EventQueue() { ::close(fd_); }
    EventQueue(const EventQueue&) = delete;
    EventQueue& operator=(const EventQueue&) = delete;

    void push(Event event) {
        {
            std::lock_guard lk(mu_);
            events_.push_back(std::move(event));
        }
        const std::uint64_t one = 1;
        // Only fails when the counter would overflow: it is readable then anyway.
        (void)!::write(fd_, &one, sizeof one);
    }

    // Readable (POLLIN) while events are waiting.
    int fd() const { return fd_; }

    // Every waiting event, oldest first.
    std::deque<Event> take() {
        std::uint64_t count;
        (void)!::read(fd_, &count, sizeof count);
        std::lock_guard lk(mu_);
        return std::exchange(events_, {});
    }

  private:
    const int fd_;  // constant after construction
    std::mutex mu_;
    std::deque<Event> events_;  // guarded by mu_
};

}  // namespace pgelect::cli
