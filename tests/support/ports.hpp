// Local ports for tests: the throwaway server's (PGPORT, exported by
// scripts/with-postgres) and one that refuses connections.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>

namespace pgelect::test {

inline int server_port() {
    const char* p = std::getenv("PGPORT");
    return p ? std::atoi(p) : 5432;
}

// A loopback port nothing listens on: bound once to learn a free number, then
// closed, so connecting to it is refused at once.
inline int closed_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        ::close(fd);
        ADD_FAILURE() << "cannot find a free local port";
        return 1;
    }
    ::close(fd);
    return ntohs(addr.sin_port);
}

}  // namespace pgelect::test
