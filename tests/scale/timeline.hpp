// The leadership timeline of the contention test, rebuilt from the candidates'
// files (see contention_node.cpp), and the checks run on it.  All instants are
// nanoseconds on the steady clock (CLOCK_MONOTONIC, shared by every process).
#pragma once

#include <algorithm>
#include <climits>
#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace pgelect::test::contention {

struct Interval {
    int process;
    std::int64_t token;
    long long start;
    long long end;  // LLONG_MAX while open
    std::string reason;  // why it ended (LossInfo::reason), empty while open
};

struct GroupTimeline {
    std::vector<Interval> intervals;  // sorted by start
    std::vector<long long> resigns;   // sorted
};

using Timeline = std::map<std::string, GroupTimeline>;

// Adds one candidate's file to the timeline.  Returns false if a line is malformed.
inline bool read_file(const std::string& path, int process, Timeline& out) {
    std::ifstream in(path);
    std::string kind, group;
    while (in >> kind >> group) {
        auto& g = out[group];
        if (kind == "R") {
            long long t;
            if (!(in >> t)) return false;
            g.resigns.push_back(t);
        } else if (kind == "B") {
            std::int64_t token;
            long long t;
            if (!(in >> token >> t)) return false;
            g.intervals.push_back({process, token, t, LLONG_MAX, ""});
        } else if (kind == "L") {
            std::int64_t token;
            long long t;
            std::string reason;
            if (!(in >> token >> t >> reason)) return false;
            // The latest open interval of this process with this token.
            for (auto it = g.intervals.rbegin(); it != g.intervals.rend(); ++it) {
                if (it->process == process && it->token == token && it->end == LLONG_MAX) {
                    it->end = t;
                    it->reason = reason;
                    break;
                }
            }
        } else {
            return false;
        }
    }
    return true;
}

inline void sort_timeline(Timeline& t) {
    for (auto& [_, g] : t) {
        std::sort(g.intervals.begin(), g.intervals.end(),
                  [](const Interval& a, const Interval& b) { return a.start < b.start; });
        std::sort(g.resigns.begin(), g.resigns.end());
    }
}

// Intervals of one group covering instant t.
inline int leaders_at(const GroupTimeline& g, long long t) {
    int n = 0;
    for (const auto& iv : g.intervals) {
        if (iv.start > t) break;
        if (t < iv.end) ++n;
    }
    return n;
}

// What surrounds instant t in one group: the last term that ended at or
// before t (its holder, token, end and reason) and the next one to begin.
inline std::string describe_gap(const GroupTimeline& g, long long t) {
    const Interval* before = nullptr;
    const Interval* after = nullptr;
    for (const auto& iv : g.intervals) {
        if (iv.end <= t && (!before || iv.end > before->end)) before = &iv;
        if (iv.start > t && (!after || iv.start < after->start)) after = &iv;
    }
    std::string out;
    if (before) {
        out += "the term of process " + std::to_string(before->process) + " (token " +
               std::to_string(before->token) + ") ended " +
               std::to_string((t - before->end) / 1000000) + " ms before (" + before->reason + ")";
    } else {
        out += "no term ended before";
    }
    if (after) {
        out += ", the next began " + std::to_string((after->start - t) / 1000000) +
               " ms after (process " + std::to_string(after->process) + ")";
    } else {
        out += ", no term began after";
    }
    return out;
}

// Whether a resign of this group happened within `tolerance` before t (or at t).
inline bool resigned_within(const GroupTimeline& g, long long t, long long tolerance) {
    auto it = std::upper_bound(g.resigns.begin(), g.resigns.end(), t);
    return it != g.resigns.begin() && t - *std::prev(it) <= tolerance;
}

// Whether a term of this group ended within `tolerance` before t (or at t)
// by a loss the library reported because it could no longer renew: the renew
// deadline passed, renewals failed, or the database was unreachable.  On a
// loaded machine these happen; the followers then take over once the row's
// lease has run out (or at once, if the best-effort release got through).
inline bool lost_within(const GroupTimeline& g, long long t, long long tolerance) {
    return std::any_of(g.intervals.begin(), g.intervals.end(), [&](const Interval& iv) {
        const bool reported = iv.reason == "deadline_passed" || iv.reason == "renewal_failed" ||
                              iv.reason == "database_unavailable";
        return reported && iv.end <= t && t - iv.end <= tolerance;
    });
}

// From each resign to the next interval start in that group (-1 if none followed).
inline long long worst_resign_to_leader(const GroupTimeline& g) {
    long long worst = 0;
    for (long long r : g.resigns) {
        auto it = std::find_if(g.intervals.begin(), g.intervals.end(),
                               [&](const Interval& iv) { return iv.start >= r; });
        if (it == g.intervals.end()) continue;  // the run ended first
        worst = std::max(worst, it->start - r);
    }
    return worst;
}

}  // namespace pgelect::test::contention
