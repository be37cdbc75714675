#include "pg/listener.hpp"

#include <sys/socket.h>

#include <pqxx/connection>
#include <pqxx/errorhandler>
#include <pqxx/notification>

#include <algorithm>
#include <iostream>

#include "pg/pool.hpp"

namespace pgelect::detail {
namespace {

class Receiver : public pqxx::notification_receiver {
public:
    Receiver(pqxx::connection_base& conn, const std::string& channel,
             const std::function<void(const std::string&)>& fn)
        : pqxx::notification_receiver(conn, channel), fn_(fn) {}
    void operator()(const std::string& payload, int /*backend_pid*/) override { fn_(payload); }

private:
    const std::function<void(const std::string&)>& fn_;
};

}  // namespace

// Publishes the listener connection's socket to stop() for as long as the
// connection is open (it is declared after the connection, so it is cleared
// before the connection closes the socket).
class Listener::SocketRegistration {
public:
    SocketRegistration(Listener& l, int fd) : l_(l) {
        std::lock_guard lk(l_.mu_);
        stopping_ = l_.stopping_;
        if (!stopping_) l_.socket_ = fd;
    }
    ~SocketRegistration() {
        std::lock_guard lk(l_.mu_);
        l_.socket_ = -1;
    }
    bool stopping() const { return stopping_; }

private:
    Listener& l_;
    bool stopping_ = false;
};

Listener::Listener(ConnInfo info, ChannelOf channel_of,
                   std::function<void(const std::string&)> on_notify, std::function<void()> on_gap)
    : info_(std::move(info)),
      channel_of_(std::move(channel_of)),
      on_notify_(std::move(on_notify)),
      on_gap_(std::move(on_gap)) {}

Listener::~Listener() { stop(); }

void Listener::ensure_started(std::chrono::milliseconds wait) {
    std::unique_lock lk(mu_);
    if (stopping_) return;
    if (!started_) {
        started_ = true;
        thread_ = std::thread([this] { run(); });
    }
    cv_.wait_for(lk, wait, [&] { return stopping_ || attempts_ > 0; });
}

void Listener::stop() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
        if (socket_ >= 0) ::shutdown(socket_, SHUT_RDWR);
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void Listener::run() {
    auto backoff = std::chrono::milliseconds(50);
    for (;;) {
        {
            std::lock_guard lk(mu_);
            if (stopping_) break;
        }
        try {
            auto conn = ConnectionPool::connect(info_, "listen for lock releases");
            // stop() shuts this socket down, so no statement of this thread
            // (the channel lookup, LISTEN, the UNLISTEN of ~Receiver) can
            // block it on a silent network; the failed UNLISTEN stays quiet.
            pqxx::quiet_errorhandler quiet(*conn);
            SocketRegistration registration(*this, conn->sock());
            if (registration.stopping()) break;
            ConnectionPool::set_up_session(*conn, info_);
            Receiver receiver(*conn, channel_of_(*conn), on_notify_);  // sends LISTEN
            listening_ = true;
            {
                std::lock_guard lk(mu_);
                ++attempts_;
            }
            cv_.notify_all();
            backoff = std::chrono::milliseconds(50);
            on_gap_();  // releases before LISTEN took effect would be missed otherwise
            for (;;) {
                {
                    std::lock_guard lk(mu_);
                    if (stopping_) break;
                }
                // Waits on the socket; returns early when a notification arrives.
                conn->await_notification(0, 100000);
                if (!conn->is_open()) break;
            }
            // Disconnected before the receiver goes: it then sends no UNLISTEN (the
            // server forgets the LISTEN with the session), which on a socket
            // stop() shut down would fail and leak its result in libpqxx 6.4.
            conn->disconnect();
        } catch (const std::exception&) {
            // Contenders fall back to polling until LISTEN is back.
        }
        listening_ = false;
        std::unique_lock lk(mu_);
        ++attempts_;
        cv_.notify_all();
        if (cv_.wait_for(lk, backoff, [&] { return stopping_; })) break;
        backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
    listening_ = false;
}

}  // namespace pgelect::detail
