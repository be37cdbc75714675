// WaitBoard: contenders waiting for a lock to be released.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stop_token>
#include <thread>
#include <vector>

#include "lock/wait_board.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using pgelect::detail::WaitBoard;
using Clock = WaitBoard::Clock;
using Generation = WaitBoard::Generation;
using pgelect_test::eventually;

long long ms_since(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// Runs board.wait(name, seen, now + timeout) on a thread and reports when it returned.
struct Waiter {
    Waiter(WaitBoard& board, std::string name, Generation seen, std::chrono::milliseconds timeout,
           std::stop_token stop = {})
        : start(Clock::now()), thread([&board, name, seen, timeout, stop, this] {
              entered = true;
              board.wait(name, seen, start + timeout, stop);
              elapsed_ms = ms_since(start);
              done = true;
          }) {}
    ~Waiter() {
        if (thread.joinable()) thread.join();
    }
    Clock::time_point start;
    std::atomic<bool> entered{false};
    std::atomic<bool> done{false};
    std::atomic<long long> elapsed_ms{-1};
    std::thread thread;
};

TEST(WaitBoard, WakeFromAnotherThreadReturnsPromptly) {
    WaitBoard board;
    WaitBoard::Registration reg(board, "a");
    const auto seen = board.generation("a");
    Waiter w(board, "a", seen, 10s);
    ASSERT_TRUE(eventually([&] { return w.entered.load(); }));
    // Give the waiter a moment to block on the condition variable (either way it must wake).
    std::this_thread::sleep_for(20ms);
    EXPECT_FALSE(w.done.load());
    board.wake("a");
    ASSERT_TRUE(eventually([&] { return w.done.load(); }, 2s));
    EXPECT_LT(w.elapsed_ms.load(), 2000);
    // A release counts in the low half only.
    EXPECT_EQ(board.generation("a").released, seen.released + 1);
    EXPECT_EQ(board.generation("a").all, seen.all);
}

TEST(WaitBoard, WakeOfAnotherNameDoesNotWake) {
    WaitBoard board;
    WaitBoard::Registration ra(board, "a");
    WaitBoard::Registration rb(board, "b");
    const auto seen_a = board.generation("a");
    const auto seen_b = board.generation("b");
    Waiter w(board, "a", seen_a, 150ms);
    ASSERT_TRUE(eventually([&] { return w.entered.load(); }));
    for (int i = 0; i < 5 && !w.done; ++i) {
        board.wake("b");
        board.wake("unregistered");
        std::this_thread::sleep_for(10ms);
    }
    ASSERT_TRUE(eventually([&] { return w.done.load(); }, 3s));
    // It returned at its deadline, not at one of the wakes.
    EXPECT_GE(w.elapsed_ms.load(), 149);
    EXPECT_TRUE(board.generation("a") == seen_a);
    EXPECT_GT(board.generation("b").released, seen_b.released);
}

TEST(WaitBoard, WakeBeforeWaitIsNotMissed) {
    WaitBoard board;
    WaitBoard::Registration reg(board, "a");
    const auto seen = board.generation("a");
    board.wake("a");  // the release happens between the poll and the wait
    const auto start = Clock::now();
    board.wait("a", seen, start + 5s, {});
    EXPECT_LT(ms_since(start), 1000);
}

TEST(WaitBoard, UnchangedGenerationWaitsUntilDeadline) {
    WaitBoard board;
    WaitBoard::Registration reg(board, "a");
    const auto start = Clock::now();
    board.wait("a", board.generation("a"), start + 60ms, {});
    EXPECT_GE(ms_since(start), 59);
    EXPECT_LT(ms_since(start), 2000);
}

TEST(WaitBoard, StopTokenWakesTheWaiter) {
    WaitBoard board;
    WaitBoard::Registration reg(board, "a");
    std::stop_source stop;
    Waiter w(board, "a", board.generation("a"), 10s, stop.get_token());
    ASSERT_TRUE(eventually([&] { return w.entered.load(); }));
    std::this_thread::sleep_for(20ms);
    EXPECT_FALSE(w.done.load());
    stop.request_stop();
    ASSERT_TRUE(eventually([&] { return w.done.load(); }, 2s));
    EXPECT_LT(w.elapsed_ms.load(), 2000);
}

TEST(WaitBoard, AlreadyStoppedTokenReturnsAtOnce) {
    WaitBoard board;
    WaitBoard::Registration reg(board, "a");
    std::stop_source stop;
    stop.request_stop();
    const auto start = Clock::now();
    board.wait("a", board.generation("a"), start + 5s, stop.get_token());
    EXPECT_LT(ms_since(start), 1000);
}

TEST(WaitBoard, WakeAllWakesEveryWaiter) {
    WaitBoard board;
    WaitBoard::Registration ra(board, "a");
    WaitBoard::Registration rb(board, "b");
    const auto ga = board.generation("a");
    const auto gb = board.generation("b");
    const auto gx = board.generation("x");  // not registered: wake_all still counts
    Waiter wa(board, "a", ga, 10s);
    Waiter wb(board, "b", gb, 10s);
    ASSERT_TRUE(eventually([&] { return wa.entered && wb.entered; }));
    std::this_thread::sleep_for(20ms);
    EXPECT_FALSE(wa.done || wb.done);
    board.wake_all();
    ASSERT_TRUE(eventually([&] { return wa.done && wb.done; }, 2s));
    // wake_all counts in the high half: "notifications may have been missed", not "released".
    EXPECT_EQ(board.generation("a").released, ga.released);
    EXPECT_EQ(board.generation("b").released, gb.released);
    EXPECT_EQ(board.generation("a").all, ga.all + 1);
    EXPECT_EQ(board.generation("b").all, gb.all + 1);
    EXPECT_EQ(board.generation("x").all, gx.all + 1);
}

TEST(WaitBoard, WakeWakesAllWaitersOfThatName) {
    WaitBoard board;
    WaitBoard::Registration r1(board, "a");
    WaitBoard::Registration r2(board, "a");
    WaitBoard::Registration r3(board, "a");
    const auto seen = board.generation("a");
    std::vector<std::unique_ptr<Waiter>> ws;
    for (int i = 0; i < 3; ++i) ws.push_back(std::make_unique<Waiter>(board, "a", seen, 10s));
    ASSERT_TRUE(eventually([&] {
        for (auto& w : ws)
            if (!w->entered) return false;
        return true;
    }));
    board.wake("a");
    ASSERT_TRUE(eventually(
        [&] {
            for (auto& w : ws)
                if (!w->done) return false;
            return true;
        },
        2s));
}

TEST(WaitBoard, WakeWithoutWaitersIsANoOp) {
    WaitBoard board;
    const auto before = board.generation("a");
    board.wake("a");
    EXPECT_TRUE(board.generation("a") == before);
}

TEST(WaitBoard, EntryLivesWhileAnyRegistrationDoes) {
    WaitBoard board;
    auto r1 = std::make_unique<WaitBoard::Registration>(board, "a");
    {
        WaitBoard::Registration r2(board, "a");
        board.wake("a");
    }
    // r1 still registered: the generation is kept and further wakes count.
    const auto g = board.generation("a");
    EXPECT_EQ(g.released, 1u);
    board.wake("a");
    EXPECT_EQ(board.generation("a").released, g.released + 1);
    r1.reset();
    board.wake("a");  // no waiters left: no-op, the board forgets "a"
    EXPECT_EQ(board.generation("a").released, 0u);
}

}  // namespace
