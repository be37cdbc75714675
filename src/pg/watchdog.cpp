#include "pg/watchdog.hpp"

#include <sys/socket.h>

#include <algorithm>

namespace pgelect::detail {

StatementWatchdog::StatementWatchdog() : thread_([this] { run(); }) {}

StatementWatchdog::~StatementWatchdog() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    cv_.notify_one();
    thread_.join();
}

StatementWatchdog::Ticket StatementWatchdog::arm(int fd, Clock::time_point deadline) {
    std::lock_guard lk(mu_);
    const Ticket ticket = next_ticket_++;
    armed_.emplace(ticket, Entry{fd, deadline});
    // Deadlines are "now + a constant", so a new one is almost never the
    // earliest: the thread is woken only when it is.
    if (deadline < next_wake_) {
        next_wake_ = deadline;
        cv_.notify_one();
    }
    return ticket;
}

bool StatementWatchdog::disarm(Ticket ticket) {
    std::lock_guard lk(mu_);
    const auto it = armed_.find(ticket);
    if (it == armed_.end()) return false;
    const bool fired = it->second.fired;
    armed_.erase(it);
    return fired;
}

void StatementWatchdog::run() {
    std::unique_lock lk(mu_);
    while (!stopping_) {
        const auto now = Clock::now();
        auto earliest = Clock::time_point::max();
        for (auto& [ticket, entry] : armed_) {
            if (entry.fired) continue;
            if (entry.deadline <= now) {
                // Under mu_: the owner cannot disarm and close the socket meanwhile.
                ::shutdown(entry.fd, SHUT_RDWR);
                entry.fired = true;
            } else {
                earliest = std::min(earliest, entry.deadline);
            }
        }
        next_wake_ = earliest;
        if (earliest == Clock::time_point::max()) {
            cv_.wait(lk);
        } else {
            cv_.wait_until(lk, earliest);
        }
    }
}

}  // namespace pgelect::detail
