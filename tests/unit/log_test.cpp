// The log sink: routing, restoring the default, failing sinks, and the
// elector's collapsing of repeated campaign failures.

#include "pgelect/log.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pgelect/elector.hpp"
#include "pgelect/lock_client.hpp"
#include "ports.hpp"

namespace pgelect {
namespace {

struct Captured {
    LogLevel level;
    std::string message;
};

// Collects messages while alive; restores the default sink on destruction.
class CapturingSink {
  public:
    CapturingSink() {
        set_log_sink([this](LogLevel level, std::string_view message) {
            std::lock_guard lk(mu_);
            messages_.push_back({level, std::string(message)});
        });
    }
    ~CapturingSink() { set_log_sink(nullptr); }
    std::vector<Captured> messages() const {
        std::lock_guard lk(mu_);
        return messages_;
    }

  private:
    mutable std::mutex mu_;
    std::vector<Captured> messages_;
};

TEST(Log, MessagesGoToTheSinkWithTheirLevel) {
    CapturingSink sink;
    log(LogLevel::warning, "first");
    log(LogLevel::error, "second");
    const auto got = sink.messages();
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].level, LogLevel::warning);
    EXPECT_EQ(got[0].message, "first");
    EXPECT_EQ(got[1].level, LogLevel::error);
    EXPECT_EQ(got[1].message, "second");
    EXPECT_EQ(to_string(LogLevel::warning), "warning");
    EXPECT_EQ(to_string(LogLevel::error), "error");
}

TEST(Log, NullSinkRestoresStderr) {
    { CapturingSink sink; }
    testing::internal::CaptureStderr();
    log(LogLevel::warning, "to stderr");
    EXPECT_EQ(testing::internal::GetCapturedStderr(), "pgelect: to stderr\n");
}

TEST(Log, AThrowingSinkIsContained) {
    set_log_sink([](LogLevel, std::string_view) { throw std::runtime_error("sink broke"); });
    EXPECT_NO_THROW(log(LogLevel::error, "x"));
    set_log_sink(nullptr);
}

TEST(Log, SinkCanBeReplacedWhileOtherThreadsLog) {
    std::atomic<bool> done{false};
    std::atomic<long> delivered{0};
    set_log_sink([&](LogLevel, std::string_view) { ++delivered; });
    std::vector<std::thread> loggers;
    for (int i = 0; i < 4; ++i) {
        loggers.emplace_back([&] {
            while (!done) log(LogLevel::warning, "busy");
        });
    }
    std::atomic<long> delivered_to_replacements{0};
    for (int i = 0; i < 200; ++i) {
        set_log_sink([&](LogLevel, std::string_view) { ++delivered_to_replacements; });
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (delivered_to_replacements.load() == 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::yield();
    }
    done = true;
    for (auto& t : loggers) t.join();
    set_log_sink(nullptr);
    EXPECT_GT(delivered_to_replacements.load(), 0);
}

TEST(Log, AThrowingSlotIsLoggedAsAnError) {
    CapturingSink sink;
    boost::signals2::signal<void(), detail::SafeCombiner> sig;
    sig.connect([] { throw std::runtime_error("boom"); });
    sig();
    const auto got = sink.messages();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].level, LogLevel::error);
    EXPECT_EQ(got[0].message, "a signal slot threw: boom");
}

// An elector that cannot reach the database retries with backoff; the first
// failure is logged at once, the identical ones after it are held back.
TEST(Log, RepeatedCampaignFailuresAreLoggedOnce) {
    CapturingSink sink;
    LockClientOptions o;  // table "locks"
    LockClient client("host=127.0.0.1 port=" + std::to_string(test::closed_port()) +
                          " dbname=d user=u connect_timeout=2",
                      o);
    std::atomic<int> failed{0};
    client.acquire_attempted.connect([&](const std::string&, AttemptResult r) {
        if (r == AttemptResult::error) ++failed;
    });
    ElectorOptions eo;
    eo.group = "g";
    eo.max_backoff = std::chrono::milliseconds(20);
    Elector elector(client, eo);
    elector.start();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (failed.load() < 6 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    elector.stop();
    ASSERT_GE(failed.load(), 6) << "the elector should have retried";
    const auto got = sink.messages();
    ASSERT_EQ(got.size(), 1u) << "identical failures within a minute are held back";
    EXPECT_EQ(got[0].level, LogLevel::warning);
    EXPECT_EQ(got[0].message.rfind("campaign for \"g\": acquire lock \"g\" on table locks: "
                                   "cannot connect to PostgreSQL",
                                   0),
              0u)
        << got[0].message;
}

}  // namespace
}  // namespace pgelect
