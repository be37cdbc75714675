// A tiny TCP proxy for fault tests: forwards 127.0.0.1:<port()> to a target
// port, and can black-hole the traffic (bytes stop flowing both ways, sockets
// stay open) and restore it, like a network partition that heals, or hold
// back only the server's replies (requests still arrive and are executed).
// Its sockets are close-on-exec: a copy inherited by a process the test starts
// (a server restarted through pg_ctl, a child) would keep a connection the
// proxy closed open, and its client waiting for bytes that never come.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace pgelect::test {

class TcpProxy {
public:
    explicit TcpProxy(int target_port) : target_port_(target_port) {
        listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;
        if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            ::listen(listen_fd_, 64) != 0) {
            throw std::runtime_error("proxy: cannot listen");
        }
        socklen_t len = sizeof addr;
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
        port_ = ntohs(addr.sin_port);
        thread_ = std::thread([this] { loop(); });
    }
    ~TcpProxy() {
        stop_ = true;
        thread_.join();
        ::close(listen_fd_);
        for (auto& p : pairs_) {
            ::close(p.client);
            ::close(p.server);
        }
    }
    int port() const { return port_; }
    void blackhole(bool on) { blackholed_ = on; }
    // One-way fault: what clients send still reaches the server, its replies
    // wait in the socket buffers until this is turned off again.
    void hold_replies(bool on) { replies_held_ = on; }

private:
    struct Pair {
        int client;
        int server;
    };

    void loop() {
        char buf[65536];
        while (!stop_) {
            std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
            const bool forward = !blackholed_;
            const bool replies = forward && !replies_held_;
            for (auto& p : pairs_) {
                fds.push_back({p.client, static_cast<short>(forward ? POLLIN : 0), 0});
                fds.push_back({p.server, static_cast<short>(replies ? POLLIN : 0), 0});
            }
            if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
            const std::size_t polled = pairs_.size();  // accept_one() may add one
            if (fds[0].revents & POLLIN) accept_one();
            std::vector<std::size_t> dead;
            for (std::size_t i = 0; i < polled; ++i) {
                auto& p = pairs_[i];
                for (int dir = 0; dir < 2; ++dir) {
                    const auto& f = fds[1 + 2 * i + dir];
                    if (!(f.revents & (POLLIN | POLLHUP | POLLERR))) continue;
                    const int from = dir == 0 ? p.client : p.server;
                    const int to = dir == 0 ? p.server : p.client;
                    const ssize_t n = ::recv(from, buf, sizeof buf, 0);
                    if (n <= 0 || ::send(to, buf, n, MSG_NOSIGNAL) != n) {
                        dead.push_back(i);
                        break;
                    }
                }
            }
            for (auto it = dead.rbegin(); it != dead.rend(); ++it) {
                ::close(pairs_[*it].client);
                ::close(pairs_[*it].server);
                pairs_.erase(pairs_.begin() + static_cast<long>(*it));
            }
        }
    }

    void accept_one() {
        const int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;
        const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(static_cast<uint16_t>(target_port_));
        if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            ::close(c);
            ::close(s);
            return;
        }
        pairs_.push_back({c, s});
    }

    const int target_port_;
    int listen_fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<bool> blackholed_{false};
    std::atomic<bool> replies_held_{false};
    std::vector<Pair> pairs_;  // owned by the proxy thread
    std::thread thread_;
};

}  // namespace pgelect::test
