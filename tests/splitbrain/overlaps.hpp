// The split-brain checker's verdict: which leadership intervals of different
// nodes overlap, on the shared steady clock, in nanoseconds.
#pragma once

#include <algorithm>
#include <climits>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "belief_log.hpp"

namespace pgelect::test::splitbrain {

// A term as a node reported it about itself (become_leader .. lost_leadership).
struct Interval {
    int node;
    std::int64_t token;
    long long start;
    long long end;  // LLONG_MAX while open
};

// A belief run of one node (belief_log.hpp).
struct Belief {
    int node;
    BeliefRun run;
    std::int64_t token() const { return run.token; }
};

// The lease row freed by hand (record_version_number = NULL) while `node` led,
// by a statement sent at `sent` and answered at `done`.  This is outside the
// protocol: waiters take a free row at once, and the holder only learns of it
// at its next renewal, or stops trusting its lease at the latest one renew
// deadline after its last renewal, which started before the row was freed.
struct HandFree {
    int node;
    long long sent;
    long long done;
};

struct Overlap {
    int earlier_node, later_node;
    std::int64_t earlier_token, later_token;
    long long from, to;     // the stretch both nodes provably believed
    bool after_hand_free;   // explained by a HandFree (see explained_by_hand_free)
    std::string detail;
};

// An overlap that starts after the row was freed by hand under `earlier`, by
// a node that began after the statement was sent, while `earlier` still
// believed but no longer than the renew deadline after the row was freed.
inline bool explained_by_hand_free(const std::vector<HandFree>& frees, int earlier,
                                   long long earlier_start, long long earlier_end,
                                   long long later_start, long long renew_deadline_ns) {
    return std::any_of(frees.begin(), frees.end(), [&](const HandFree& f) {
        return f.node == earlier && earlier_start < f.done && later_start >= f.sent &&
               earlier_end <= f.done + renew_deadline_ns;
    });
}

inline std::string ms_after(long long t, long long origin) {
    std::ostringstream s;
    s << (t - origin) / 1000 / 1000.0 << " ms";
    return s.str();
}

// Self-reported terms: sorted by start, each must end before the next starts.
inline std::vector<Overlap> reported_overlaps(std::vector<Interval> all,
                                              const std::vector<HandFree>& frees,
                                              long long renew_deadline_ns) {
    std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.start < b.start; });
    std::vector<Overlap> out;
    for (std::size_t i = 0; i < all.size(); ++i) {
        for (std::size_t j = i + 1; j < all.size() && all[j].start < all[i].end; ++j) {
            const auto& a = all[i];
            const auto& b = all[j];
            if (a.node == b.node) continue;
            std::ostringstream d;
            d << "node " << a.node << " reported term " << a.token << " until "
              << ms_after(a.end, b.start) << " after node " << b.node << " reported term "
              << b.token << " from " << b.start;
            out.push_back({a.node, b.node, a.token, b.token, b.start, std::min(a.end, b.end),
                           explained_by_hand_free(frees, a.node, a.start, a.end, b.start,
                                                  renew_deadline_ns),
                           d.str()});
        }
    }
    return out;
}

// Sampled belief: node X provably believed throughout [first_t1, last_t0] of
// a run, and at some instant of each sample's [t0, t1].  Two runs of
// different nodes overlap when their proven stretches intersect, or when a
// sample of one lies wholly inside the other's stretch.  Nothing else is
// claimed: two windows that merely intersect prove nothing.
inline std::vector<Overlap> belief_overlaps(const std::vector<Belief>& all,
                                            const std::vector<HandFree>& frees,
                                            long long renew_deadline_ns) {
    struct Span {
        long long from, to;
    };
    auto stretch = [](const BeliefRun& r) { return Span{r.first_t1, r.last_t0}; };
    auto windows = [](const BeliefRun& r) {
        return std::vector<Span>{{r.first_t0, r.first_t1}, {r.last_t0, r.last_t1}};
    };
    // Where a and b provably both believed, if anywhere.
    auto common = [&](const BeliefRun& a, const BeliefRun& b, Span& where) {
        const Span sa = stretch(a), sb = stretch(b);
        if (sa.from <= sa.to && sb.from <= sb.to && std::max(sa.from, sb.from) <= std::min(sa.to, sb.to)) {
            where = {std::max(sa.from, sb.from), std::min(sa.to, sb.to)};
            return true;
        }
        for (const auto& [outer, inner_run] : {std::pair{sa, &b}, std::pair{sb, &a}}) {
            for (const Span w : windows(*inner_run)) {
                if (outer.from <= w.from && w.to <= outer.to) {
                    where = w;
                    return true;
                }
            }
        }
        return false;
    };
    std::vector<Overlap> out;
    for (std::size_t i = 0; i < all.size(); ++i) {
        for (std::size_t j = i + 1; j < all.size(); ++j) {
            if (all[i].node == all[j].node) continue;
            Span where{};
            if (!common(all[i].run, all[j].run, where)) continue;
            const bool i_first = all[i].run.first_t0 <= all[j].run.first_t0;
            const Belief& e = i_first ? all[i] : all[j];
            const Belief& l = i_first ? all[j] : all[i];
            std::ostringstream d;
            d << "node " << e.node << " (term " << e.token() << ") believed from " << e.run.first_t0
              << " until " << ms_after(e.run.last_t1, l.run.first_t0) << " after node " << l.node
              << " (term " << l.token() << ") began to at " << l.run.first_t0 << "; node "
              << e.node << ":";
            for (unsigned api = 0; api < kApiCount; ++api) {
                if (!(e.run.apis & (1u << api))) continue;
                d << " " << api_name(api) << " last said leader "
                  << ms_after(e.run.api_last_t0[api], l.run.first_t0) << " after that,";
            }
            d << " node " << l.node << " said leader through";
            for (unsigned api = 0; api < kApiCount; ++api) {
                if (l.run.apis & (1u << api)) d << " " << api_name(api);
            }
            out.push_back({e.node, l.node, e.token(), l.token(), where.from, where.to,
                           explained_by_hand_free(frees, e.node, e.run.first_t0, e.run.last_t1,
                                                  where.from, renew_deadline_ns),
                           d.str()});
        }
    }
    return out;
}

}  // namespace pgelect::test::splitbrain
