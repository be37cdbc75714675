// A small pool of libpqxx connections.  A connection is used by one thread at
// a time (libpqxx connections are single-threaded); a broken one is discarded
// and replaced by a fresh connection on the next borrow.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <pqxx/connection>

#include "pg/conninfo.hpp"
#include "pg/watchdog.hpp"

namespace pgelect::detail {

class ConnectionPool {
public:
    // A borrowed connection, watched by the pool's watchdog (if any) until it
    // is given back.
    class Handle {
    public:
        Handle(ConnectionPool* pool, std::unique_ptr<pqxx::connection> conn);
        Handle(Handle&& other) noexcept;
        Handle& operator=(Handle&&) = delete;
        ~Handle();
        pqxx::connection& operator*() { return *conn_; }
        pqxx::connection* operator->() { return conn_.get(); }
        // The connection is broken or in an unknown state: close it instead of reusing it.
        void discard();
        // True if the watchdog shut the connection down because its statement
        // went unanswered past the pool's statement limit.  Stops the watch.
        bool cut_off();

    private:
        void stop_watch();

        ConnectionPool* pool_;
        std::unique_ptr<pqxx::connection> conn_;
        StatementWatchdog::Ticket ticket_ = 0;
        bool cut_off_ = false;
    };

    // Thread safety: all methods may be called from any thread.  `setup` runs
    // on every new connection (e.g. to register prepared statements).  With a
    // `watchdog`, a borrowed connection is shut down once it has been borrowed
    // for longer than `statement_limit` (see StatementWatchdog); the watchdog
    // must outlive the pool.
    ConnectionPool(ConnInfo info, std::size_t size,
                   std::function<void(pqxx::connection&)> setup = {},
                   StatementWatchdog* watchdog = nullptr,
                   std::chrono::milliseconds statement_limit = {});
    ~ConnectionPool();

    // Waits for a free slot, reusing an idle connection or opening a new one.
    // Throws UnavailableError ("<context>: cannot connect to <description>: ...").
    Handle borrow(const std::string& context);
    // Closes idle connections; later borrows reconnect.
    void clear_idle();
    // Connections currently open (idle + in use).
    std::size_t open_connections() const;

    // Opens one connection with the pool's settings (used by the listener too).
    static std::unique_ptr<pqxx::connection> connect(const ConnInfo& info,
                                                     const std::string& context);

private:
    void give_back(std::unique_ptr<pqxx::connection> conn);

    // constant after construction
    const ConnInfo info_;
    const std::size_t size_;
    const std::function<void(pqxx::connection&)> setup_;
    StatementWatchdog* const watchdog_;
    const std::chrono::milliseconds statement_limit_;

    // guarded by mu_
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<pqxx::connection>> idle_;
    std::size_t in_use_ = 0;
};

}  // namespace pgelect::detail
