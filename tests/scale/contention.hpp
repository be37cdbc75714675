// Settings shared by the contention test's checker and its candidate processes.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

namespace pgelect::test::contention {

using namespace std::chrono_literals;

constexpr int kProcesses = 20;
constexpr int kGroups = 100;
// Per process: 2 pooled connections, the renewal connection and the LISTEN
// connection, so 20 x 4 = 80 of the server's 600.
constexpr std::size_t kPoolSize = 2;

// Leases long enough for 2000 campaign threads on two loaded cores; followers
// poll every 2 s (1900 followers: about 950 reads/s) and are woken at once by
// NOTIFY when a leader resigns.
constexpr auto kLease = 4000ms;
constexpr auto kRenewDeadline = 3000ms;
constexpr auto kHeartbeat = 500ms;
constexpr auto kRetry = 2000ms;
// A resigning leader stays out for this long, so that a follower takes over.
constexpr auto kResignCooldown = 1000ms;

inline std::string group_name(int index) {
    char name[8];
    std::snprintf(name, sizeof name, "g%03d", index);
    return name;
}

inline std::string identity(int process) {
    char name[8];
    std::snprintf(name, sizeof name, "n%02d", process);
    return name;
}

}  // namespace pgelect::test::contention
