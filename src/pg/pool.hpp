// A small pool of libpqxx connections.  A connection is used by one thread at
// a time (libpqxx connections are single-threaded); a broken one is discarded
// and replaced by a fresh connection on the next borrow.
#pragma once

#include <condition_variable>
#include <functional>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <pqxx/connection>

#include "pg/conninfo.hpp"

namespace pgelect::detail {

class ConnectionPool {
public:
    class Handle {
    public:
        Handle(ConnectionPool* pool, std::unique_ptr<pqxx::connection> conn)
            : pool_(pool), conn_(std::move(conn)) {}
        Handle(Handle&& other) noexcept = default;
        Handle& operator=(Handle&&) = delete;
        ~Handle();
        pqxx::connection& operator*() { return *conn_; }
        pqxx::connection* operator->() { return conn_.get(); }
        // The connection is broken or in an unknown state: close it instead of reusing it.
        void discard() { conn_.reset(); }

    private:
        ConnectionPool* pool_;
        std::unique_ptr<pqxx::connection> conn_;
    };

    // Thread safety: all methods may be called from any thread.  `setup` runs
    // on every new connection (e.g. to register prepared statements).
    ConnectionPool(ConnInfo info, std::size_t size,
                   std::function<void(pqxx::connection&)> setup = {});
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

    // guarded by mu_
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<pqxx::connection>> idle_;
    std::size_t in_use_ = 0;
};

}  // namespace pgelect::detail
