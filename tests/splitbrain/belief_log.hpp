// What a split-brain node believed, as sampled by its sampler thread, in a
// file the node maps into memory (MAP_SHARED): every store lands in the page
// cache at once, so the record survives a SIGKILL of the node without a write
// or a flush per sample.
//
// A run is a stretch of consecutive samples in which at least one belief API
// said "leader", all for the same term.  Each sample reads the steady clock
// (CLOCK_MONOTONIC, one clock for every process of the machine) before (t0) and
// after (t1) asking the APIs, so a "leader" answer proves belief at some
// instant of [t0, t1].  Belief in one term only ever goes from true to false,
// so a run proves belief throughout [first_t1, last_t0].
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace pgelect::test::splitbrain {

// The belief APIs a node samples; bit i of a mask is api i.
enum Api : unsigned {
    kIsLeader,           // Elector::is_leader()
    kLeadership,         // Elector::leadership().has_value()
    kWaitForLeadership,  // Elector::wait_for_leadership(0ms)
    kStopToken,          // the Leadership::stop_token captured in become_leader, not fired
    kLockHeld,           // Lock::is_released() == false (a node holding a raw lock)
    kApiCount,
};
// The APIs that read the clock when asked; the stop token is an event that the
// deadline (or renewal) thread fires, so it can only be as punctual as that thread.
constexpr unsigned kClockApis = (1u << kIsLeader) | (1u << kLeadership) |
                                (1u << kWaitForLeadership) | (1u << kLockHeld);
inline const char* api_name(unsigned api) {
    static const char* const names[] = {"is_leader()", "leadership()", "wait_for_leadership(0)",
                                        "stop_token", "!Lock::is_released()"};
    return api < kApiCount ? names[api] : "?";
}

struct BeliefRun {
    std::int64_t token;     // the term's fencing token (0 if no sample named it)
    std::int64_t first_t0;  // the first "leader" sample's clock reads
    std::int64_t first_t1;
    std::int64_t last_t0;  // the last one's
    std::int64_t last_t1;
    std::int64_t api_last_t0[kApiCount];  // per API: t0 of its last "leader" sample (0: never)
    std::uint32_t apis;                   // mask of the APIs that said "leader" in this run
    std::uint32_t samples;
};

inline std::int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

namespace detail {
constexpr std::size_t kMaxRuns = 8192;
struct BeliefFile {
    std::atomic<std::uint64_t> runs;  // published runs; the last may still grow
    std::uint64_t pad[7];
    BeliefRun run[kMaxRuns];
};
}  // namespace detail

// The node's side: one sampler thread calls sample() for every round.
class BeliefWriter {
public:
    explicit BeliefWriter(const std::string& path) {
        const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || ::ftruncate(fd, sizeof(detail::BeliefFile)) != 0) {
            throw std::runtime_error("cannot create " + path);
        }
        void* p = ::mmap(nullptr, sizeof(detail::BeliefFile), PROT_READ | PROT_WRITE, MAP_SHARED,
                         fd, 0);
        ::close(fd);
        if (p == MAP_FAILED) throw std::runtime_error("cannot map " + path);
        file_ = static_cast<detail::BeliefFile*>(p);
    }
    ~BeliefWriter() { ::munmap(file_, sizeof(detail::BeliefFile)); }
    BeliefWriter(const BeliefWriter&) = delete;
    BeliefWriter& operator=(const BeliefWriter&) = delete;

    // One round: `mask` of the APIs that said "leader" between t0 and t1,
    // `token` the term they named (0: none named one).
    void sample(std::int64_t t0, std::int64_t t1, unsigned mask, std::int64_t token) {
        if (mask == 0) {
            open_ = nullptr;
            return;
        }
        if (open_ && token != 0 && open_->token != 0 && token != open_->token) open_ = nullptr;
        if (!open_) {
            const auto n = file_->runs.load(std::memory_order_relaxed);
            if (n == detail::kMaxRuns) return;  // far more terms than any run of the checker has
            open_ = &file_->run[n];
            *open_ = BeliefRun{token, t0, t1, t0, t1, {}, 0, 0};
            file_->runs.store(n + 1, std::memory_order_release);
        }
        if (open_->token == 0) open_->token = token;
        open_->last_t0 = t0;
        open_->last_t1 = t1;
        for (unsigned api = 0; api < kApiCount; ++api) {
            if (mask & (1u << api)) open_->api_last_t0[api] = t0;
        }
        open_->apis |= mask;
        ++open_->samples;
    }

private:
    detail::BeliefFile* file_ = nullptr;
    BeliefRun* open_ = nullptr;
};

// The checker's side, once the node has exited.
inline std::vector<BeliefRun> read_belief_runs(const std::string& path) {
    std::vector<BeliefRun> out;
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) return out;
    void* p = ::mmap(nullptr, sizeof(detail::BeliefFile), PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) return out;
    const auto* file = static_cast<const detail::BeliefFile*>(p);
    const auto n = std::min<std::uint64_t>(file->runs.load(std::memory_order_acquire),
                                           detail::kMaxRuns);
    out.assign(file->run, file->run + n);
    ::munmap(p, sizeof(detail::BeliefFile));
    return out;
}

}  // namespace pgelect::test::splitbrain
