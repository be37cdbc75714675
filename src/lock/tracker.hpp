// What a contender remembers about locks it could not take: the record version
// number it saw and when (on its own clock, see clock.hpp) it first saw that value.
// A lock whose version has not changed for a full lease is abandoned and may
// be taken over.  Time is passed in, so the rules are testable without waiting.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "lock/clock.hpp"

namespace pgelect::detail {

class ObservationTracker {
public:
    using Clock = BootClock;

    // Records that `name` carried `rvn` at `now`; returns when this value was first seen.
    Clock::time_point observe(const std::string& name, std::int64_t rvn, Clock::time_point now) {
        std::lock_guard lk(mu_);
        auto it = seen_.find(name);
        if (it != seen_.end() && it->second.rvn == rvn) return it->second.first_seen;
        if (seen_.size() >= kMaxEntries) seen_.clear();  // bounded memory; only delays takeovers
        seen_[name] = Seen{rvn, now};
        return now;
    }

    // The version that may be replaced at `now`: one seen unchanged for at least `lease`.
    std::optional<std::int64_t> stale_version(const std::string& name, Clock::time_point now,
                                              Clock::duration lease) const {
        std::lock_guard lk(mu_);
        auto it = seen_.find(name);
        if (it == seen_.end() || now - it->second.first_seen < lease) return std::nullopt;
        return it->second.rvn;
    }

    void forget(const std::string& name) {
        std::lock_guard lk(mu_);
        seen_.erase(name);
    }

private:
    static constexpr std::size_t kMaxEntries = 100000;
    struct Seen {
        std::int64_t rvn;
        Clock::time_point first_seen;
    };
    mutable std::mutex mu_;
    std::unordered_map<std::string, Seen> seen_;  // guarded by mu_
};

}  // namespace pgelect::detail
