// One LISTEN connection per lock client: turns NOTIFY messages on the table's
// channel into wake-ups of waiting contenders.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <pqxx/connection_base>

#include "pg/conninfo.hpp"

namespace pgelect::detail {

class Listener {
public:
    // channel_of(conn) names the channel to LISTEN on, asked on each new
    // connection; on_notify(payload) runs on the listener thread for every
    // notification; on_gap() runs after each (re)connection, when
    // notifications may have been missed.
    using ChannelOf = std::function<std::string(pqxx::connection_base&)>;
    Listener(ConnInfo info, ChannelOf channel_of, std::function<void(const std::string&)> on_notify,
             std::function<void()> on_gap);
    ~Listener();

    // Starts the thread on first call and waits (at most `wait`) until LISTEN is
    // active.  Thread safety: may be called from any thread.
    void ensure_started(std::chrono::milliseconds wait);
    void stop();
    bool listening() const { return listening_.load(); }

private:
    class SocketRegistration;
    void run();

    // constant after construction
    const ConnInfo info_;
    const ChannelOf channel_of_;
    const std::function<void(const std::string&)> on_notify_;
    const std::function<void()> on_gap_;

    // guarded by mu_
    std::mutex mu_;
    std::condition_variable cv_;
    bool started_ = false;
    bool stopping_ = false;
    int attempts_ = 0;  // connection attempts finished (success or failure)
    int socket_ = -1;   // the open listener connection's socket, for stop()
    std::thread thread_;

    std::atomic<bool> listening_{false};
};

}  // namespace pgelect::detail
