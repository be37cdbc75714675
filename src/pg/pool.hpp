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
#include <pqxx/errorhandler>

#include "pg/conninfo.hpp"
#include "pg/watchdog.hpp"

namespace pgelect::detail {

// The warnings the server sent on one connection (libpq notices).  pgelect's
// sessions set client_min_messages=warning, so only WARNING (or more severe)
// messages arrive: during a write, the sign that its outcome is unknown (a
// synchronous-replication wait cancelled after the local commit).  Used by
// the connection's own thread only.
class WarningLog final : public pqxx::errorhandler {
public:
    explicit WarningLog(pqxx::connection_base& conn) : pqxx::errorhandler(conn) {}
    bool operator()(const char msg[]) noexcept override;
    // The first warning since the last take(), on one line (empty: none).
    std::string take();

private:
    std::string first_;
    bool any_ = false;
};

class ConnectionPool {
public:
    // A borrowed connection, watched by the pool's watchdog (if any) until it
    // is given back.
    // A connection and its warning log (destroyed first).
    struct Pooled {
        std::unique_ptr<pqxx::connection> conn;
        std::unique_ptr<WarningLog> warnings;
    };

    class Handle {
    public:
        Handle(ConnectionPool* pool, std::unique_ptr<Pooled> conn);
        Handle(Handle&& other) noexcept;
        Handle& operator=(Handle&&) = delete;
        ~Handle();
        pqxx::connection& operator*() { return *conn_->conn; }
        pqxx::connection* operator->() { return conn_->conn.get(); }
        // The connection is broken or in an unknown state: close it instead of reusing it.
        void discard();
        // True if the watchdog shut the connection down because its statement
        // went unanswered past the pool's statement limit.  Stops the watch.
        bool cut_off();
        // The first warning the server sent since the connection was
        // borrowed (empty: none).
        std::string warning();

    private:
        void stop_watch();

        ConnectionPool* pool_;
        std::unique_ptr<Pooled> conn_;
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
    // The session settings of ConnInfo (one statement; none if it has none).
    // Runs a statement: call it where a silent server cannot block for ever.
    static void set_up_session(pqxx::connection& conn, const ConnInfo& info);

private:
    void give_back(std::unique_ptr<Pooled> conn);

    // constant after construction
    const ConnInfo info_;
    const std::size_t size_;
    const std::function<void(pqxx::connection&)> setup_;
    StatementWatchdog* const watchdog_;
    const std::chrono::milliseconds statement_limit_;

    // guarded by mu_
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<Pooled>> idle_;
    std::size_t in_use_ = 0;
};

}  // namespace pgelect::detail
