// Destruction while the network to the server is black-holed: the bytes are
// accepted (by an in-test proxy) but never answered, so neither TCP keepalives
// nor tcp_user_timeout notice.  A statement left unanswered is cut off soon
// after the statement timeout, so destroying a client or an elector returns
// in about that time instead of hanging, and another client takes the leases
// over once they expire.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <future>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pgelect/elector.hpp"
#include "pgelect/errors.hpp"
#include "pgelect/lock_client.hpp"
#include "ports.hpp"
#include "tcp_proxy.hpp"
#include "test_env.hpp"

namespace pgelect::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// statement_timeout 1 s: an unanswered statement is cut off after 2 s.
constexpr auto kStatementTimeout = 1000ms;
constexpr auto kCutOff = kStatementTimeout + 1000ms;
constexpr auto kMargin = 1500ms;  // thread joins, a loaded machine

LeaseTiming slow_enough_timing() {
    LeaseTiming t;
    t.lease_duration = 3000ms;
    t.renew_deadline = 2500ms;
    t.heartbeat_interval = 500ms;
    t.retry_interval = 100ms;
    return t;
}

std::string through(const TcpProxy& proxy) {
    return "host=127.0.0.1 port=" + std::to_string(proxy.port()) +
           " user=postgres dbname=postgres gssencmode=disable sslmode=disable";
}

LockClientOptions options(const std::string& table) {
    auto o = options_for(table, slow_enough_timing());
    o.statement_timeout = kStatementTimeout;
    o.connect_timeout = 2s;
    o.pool_size = 2;
    return o;
}

template <class Fn>
std::chrono::milliseconds timed(Fn&& fn) {
    const auto start = Clock::now();
    fn();
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

class Shutdown : public LockTableTest {};

TEST_F(Shutdown, ClientWithHeldLocksIsDestroyedInAboutTheStatementTimeout) {
    TcpProxy proxy(server_port());
    auto client = std::make_unique<LockClient>(through(proxy), options(table_));
    std::vector<Lock> held;
    for (const char* name : {"a", "b", "c"}) held.push_back(client->acquire(name));
    proxy.blackhole(true);
    const auto cut = Clock::now();
    const auto took = timed([&] { client.reset(); });
    std::cout << "  destroying the client took " << took.count() << " ms\n";
    EXPECT_LT(took, kCutOff + kMargin);
    for (const auto& l : held) EXPECT_TRUE(l.is_released()) << l.name();

    // The rows were not released (the server never heard): they are taken
    // over once the lease has run out, not before.
    auto direct = make_client(slow_enough_timing());
    std::vector<std::future<Clock::time_point>> takeovers;
    for (const char* name : {"a", "b", "c"}) {
        takeovers.push_back(std::async(std::launch::async, [&direct, name] {
            direct->acquire(name).release();
            return Clock::now();
        }));
    }
    const auto lease = slow_enough_timing().lease_duration;
    for (auto& t : takeovers) {
        ASSERT_EQ(t.wait_for(lease + 5s), std::future_status::ready);
        EXPECT_GE(t.get() - cut, lease - 2 * slow_enough_timing().heartbeat_interval);
    }
}

TEST_F(Shutdown, StatementsInFlightAreCutOffAndReportedUnavailable) {
    TcpProxy proxy(server_port());
    LockClient client(through(proxy), options(table_));
    client.acquire("x").release();  // a pooled connection exists
    proxy.blackhole(true);
    const auto start = Clock::now();
    try {
        client.get("x");
        ADD_FAILURE() << "a read over a black-holed network must fail";
    } catch (const UnavailableError& e) {
        EXPECT_EQ(std::string(e.what()),
                  "read lock \"x\" on table " + table_ +
                      ": no answer from PostgreSQL within 2000 ms (the statement timeout plus "
                      "1000 ms); the connection was closed");
    }
    const auto took = Clock::now() - start;
    EXPECT_GE(took, kCutOff - 50ms);
    EXPECT_LT(took, kCutOff + kMargin);
    proxy.blackhole(false);
    // Healed: a fresh connection gets an answer.
    EXPECT_THROW(client.get("x"), NotFoundError);  // answered: the row was deleted on release
}

TEST_F(Shutdown, LeadingAndFollowingElectorsStopInAboutTheStatementTimeout) {
    TcpProxy proxy(server_port());
    auto client = std::make_unique<LockClient>(through(proxy), options(table_));
    // "busy" is held over a direct connection, so the second elector follows.
    auto direct = make_client(slow_enough_timing());
    auto busy = direct->acquire("busy");

    ElectorOptions lead_options;
    lead_options.group = "lead";
    auto leader = std::make_unique<Elector>(*client, lead_options);
    ElectorOptions follow_options;
    follow_options.group = "busy";
    auto follower = std::make_unique<Elector>(*client, follow_options);
    leader->start();
    follower->start();
    ASSERT_TRUE(leader->wait_for_leadership(10s));
    ASSERT_TRUE(eventually([&] { return follower->leader().has_value(); }, 5s));

    proxy.blackhole(true);
    const auto cut = Clock::now();
    const auto follower_took = timed([&] { follower.reset(); });
    const auto leader_took = timed([&] { leader.reset(); });
    const auto client_took = timed([&] { client.reset(); });
    std::cout << "  stopping the follower took " << follower_took.count() << " ms, the leader "
              << leader_took.count() << " ms, the client " << client_took.count() << " ms\n";
    // An elector's statement may first wait for a pooled connection that
    // another statement holds until it is cut off: at most two cut-offs.
    EXPECT_LT(follower_took, 2 * kCutOff + kMargin);
    EXPECT_LT(leader_took, 2 * kCutOff + kMargin);
    EXPECT_LT(client_took, kCutOff + kMargin);

    // The leader's resignation never reached the server: the group is taken
    // over after its lease.
    std::stop_source stop;
    auto lock = direct->acquire("lead", {}, stop.get_token());
    EXPECT_GE(Clock::now() - cut,
              slow_enough_timing().lease_duration - 2 * slow_enough_timing().heartbeat_interval);
    lock.release();
    busy.release();
}

}  // namespace
}  // namespace pgelect::test
