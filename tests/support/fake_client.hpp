// A LockClient over an in-memory store and a fake clock, for unit tests of the
// lock protocol and the Elector: owner "me", lease 15 s, renew deadline 10 s,
// heartbeat 2 s.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>

#include "fake_clock.hpp"
#include "fake_store.hpp"
#include "lock/client_factory.hpp"
#include "pgelect/lock_client.hpp"

namespace pgelect_test {

class FakeClientTest : public ::testing::Test {
protected:
    explicit FakeClientTest(std::chrono::milliseconds retry_interval = std::chrono::milliseconds(500)) {
        using namespace std::chrono_literals;
        options_.owner = "me";
        options_.timing.lease_duration = 15s;
        options_.timing.renew_deadline = 10s;
        options_.timing.heartbeat_interval = 2s;
        options_.timing.retry_interval = retry_interval;
        client_ = pgelect::detail::ClientFactory::make(store_, clock_, options_);
    }

    pgelect::LockClientOptions options_;
    std::shared_ptr<FakeStore> store_ = std::make_shared<FakeStore>();
    std::shared_ptr<FakeClock> clock_ = std::make_shared<FakeClock>();
    std::unique_ptr<pgelect::LockClient> client_;
};

}  // namespace pgelect_test
