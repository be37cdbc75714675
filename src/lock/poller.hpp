// Reads the lock rows that a client's waiting contenders want, many of them in
// one statement.  A contender that waits for a held lock asks for a read of
// its row at its next retry tick; the first contender whose instant comes
// reads, on its own thread, every row asked for up to half a retry interval
// later as well, so the contenders of one client fall into step and N waiting
// contenders cost one read per tick, not N.  A read asked for at a lease's end
// (the row is taken over if it is unchanged then) is never served earlier.
//
// Answers go back through the wait board (WaitBoard::answered), so a
// contender waits for its answer and for a release of its lock with one wait.
// No thread of its own: the contenders take turns.
#pragma once

#include <atomic>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "lock/clock.hpp"
#include "lock/store.hpp"
#include "lock/wait_board.hpp"

namespace pgelect::detail {

class Poller {
public:
    using TimePoint = Clock::time_point;
    // Reads the rows of `names` in one statement (names without a row are missing).
    using ReadRows = std::function<std::unordered_map<std::string, PolledRow>(const std::vector<std::string>&)>;

    Poller(ReadRows read, std::shared_ptr<Clock> clock, WaitBoard& board)
        : read_(std::move(read)), clock_(std::move(clock)), board_(board) {}
    Poller(const Poller&) = delete;
    Poller& operator=(const Poller&) = delete;

    // One contender's read, and what the statement that served it answered.
    struct Request {
        std::string name;
        TimePoint due;       // read at this instant ...
        TimePoint earliest;  // ... or with another contender's read from this one on
        std::atomic<bool> done{false};  // set after the answer below
        bool found = false;
        PolledRow row;
        std::exception_ptr error;
    };

    // Asks for a read of `name` at `due`, or from `earliest` on (<= due) when
    // another contender reads.  Thread safety: every method may be called
    // from any thread.
    std::shared_ptr<Request> ask(const std::string& name, TimePoint due, TimePoint earliest);
    // Withdraws a request that is no longer wanted (answered or not).
    void withdraw(const std::shared_ptr<Request>& r);
    // For `r`, whose instant has come: reads it on this thread, together with
    // every other request that may be read now, and answers them all (waking
    // their waiters).  Returns false, reading nothing, if another thread is
    // reading `r` already: its answer comes through the board.
    bool read_due(const std::shared_ptr<Request>& r);
    // Whether `r` was answered; if so, sets `row` to its row (nullopt: no row),
    // or rethrows the read's error.
    static bool answered(const std::shared_ptr<Request>& r, std::optional<PolledRow>& row);

private:
    const ReadRows read_;
    const std::shared_ptr<Clock> clock_;
    WaitBoard& board_;

    // guarded by mu_
    mutable std::mutex mu_;
    std::vector<std::shared_ptr<Request>> pending_;  // asked for, not being read
};

}  // namespace pgelect::detail
