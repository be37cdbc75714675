// Elector pieces that need no database: option rules, the slot combiner, and
// the signal contract when no term can start.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>

#include "pgelect/elector.hpp"

namespace {

using namespace std::chrono_literals;
using pgelect::Elector;
using pgelect::ElectorOptions;
using pgelect::InvalidArgumentError;
using pgelect::LockClient;
using pgelect::LockClientOptions;

LockClient unreachable_client() {
    LockClientOptions o;
    o.connect_timeout = 2s;
    return LockClient("host=127.0.0.1 port=1 dbname=none", o);
}

TEST(ElectorOptionsUnit, GroupIdentityTimingAndBackoffAreValidated) {
    auto client = unreachable_client();
    EXPECT_THROW(Elector(client, ElectorOptions{}), InvalidArgumentError);
    ElectorOptions o;
    o.group = std::string(256, 'g');
    EXPECT_THROW(Elector(client, o), InvalidArgumentError);
    o.group = "g";
    o.identity = std::string("a\0b", 3);
    EXPECT_THROW(Elector(client, o), InvalidArgumentError);
    o.identity = "";
    o.timing = pgelect::LeaseTiming{.lease_duration = 2s, .renew_deadline = 3s, .heartbeat_interval = 500ms};
    try {
        Elector e(client, o);
        FAIL();
    } catch (const InvalidArgumentError& e) {
        EXPECT_NE(std::string(e.what()).find("renew_deadline"), std::string::npos) << e.what();
    }
    o.timing.reset();
    o.max_backoff = 0ms;
    EXPECT_THROW(Elector(client, o), InvalidArgumentError);
    o.max_backoff = 1s;
    Elector ok(client, o);
    EXPECT_EQ(ok.group(), "g");
    EXPECT_FALSE(ok.identity().empty());  // hostname-pid-random
}

TEST(SafeCombinerUnit, AThrowingSlotDoesNotStopTheOthers) {
    boost::signals2::signal<void(int), pgelect::detail::SafeCombiner> sig;
    std::atomic<int> sum{0};
    sig.connect([&](int v) { sum += v; });
    sig.connect([](int) { throw std::runtime_error("boom"); });
    sig.connect([](int) { throw 42; });
    sig.connect([&](int v) { sum += 10 * v; });
    EXPECT_NO_THROW(sig(2));
    EXPECT_EQ(sum.load(), 22);
}

TEST(ElectorContractUnit, NoTermMeansNoSignalsAndAPromptStop) {
    auto client = unreachable_client();
    ElectorOptions o;
    o.group = "g";
    o.max_backoff = 200ms;
    Elector e(client, o);
    std::atomic<int> become{0}, lost{0};
    e.become_leader.connect([&](const pgelect::Leadership&) { ++become; });
    e.lost_leadership.connect([&](const pgelect::LossInfo&) { ++lost; });
    e.start();
    e.start();  // idempotent
    EXPECT_FALSE(e.wait_for_leadership(300ms));
    EXPECT_FALSE(e.is_leader());
    EXPECT_TRUE(e.healthy());  // not leading: nothing overdue
    EXPECT_FALSE(e.leadership().has_value());
    e.resign();  // a follower without cooldown: no effect
    const auto start = std::chrono::steady_clock::now();
    e.stop();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
    EXPECT_EQ(become.load(), 0);
    EXPECT_EQ(lost.load(), 0);  // never "lost" without "became"
}

}  // namespace
