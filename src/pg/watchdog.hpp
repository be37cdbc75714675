// Cuts off connections whose statement has gone unanswered for too long.
//
// The server cancels a statement itself at statement_timeout and answers with
// an error, so a connection still silent some time after that has lost its
// server or its network.  libpq would wait for TCP to give up (keepalives,
// tcp_user_timeout); shutting the socket down makes the blocked call fail at
// once, so no pgelect call waits much longer than the statement timeout.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <thread>

namespace pgelect::detail {

class StatementWatchdog {
  public:
    using Clock = std::chrono::steady_clock;
    using Ticket = std::uint64_t;

    StatementWatchdog();
    // Joins the thread; anything still armed is left alone.
    ~StatementWatchdog();
    StatementWatchdog(const StatementWatchdog&) = delete;
    StatementWatchdog& operator=(const StatementWatchdog&) = delete;

    // Watches socket `fd` until disarm(); at `deadline` it is shut down.
    Ticket arm(int fd, Clock::time_point deadline);
    // Stops watching.  Returns true if the deadline had passed and the socket
    // was shut down.  The caller must disarm before it closes the socket.
    bool disarm(Ticket ticket);

  private:
    struct Entry {
        int fd;
        Clock::time_point deadline;
        bool fired = false;
    };
    void run();

    // guarded by mu_
    std::mutex mu_;
    std::condition_variable cv_;
    std::map<Ticket, Entry> armed_;
    Ticket next_ticket_ = 1;
    Clock::time_point next_wake_ = Clock::time_point::max();  // when the thread wakes up
    bool stopping_ = false;

    std::thread thread_;  // last: starts after the fields above exist
};

}  // namespace pgelect::detail
