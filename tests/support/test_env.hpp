// Shared helpers of the integration tests: the throwaway server's DSN, a fresh
// lock table per test, direct SQL for setting up faults, and deadline waits.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <pqxx/pqxx>

#include "pgelect/pgelect.hpp"

namespace pgelect::test {

using namespace std::chrono_literals;

inline std::string dsn() {
    const char* d = std::getenv("PGELECT_TEST_DSN");
    if (d == nullptr || *d == '\0') {
        ADD_FAILURE() << "PGELECT_TEST_DSN is not set: run the tests through scripts/with-postgres";
        return "host=127.0.0.1 port=1 connect_timeout=2";
    }
    return d;
}

// Runs one SQL statement on a fresh connection (autocommit) and returns its result.
inline pqxx::result sql(const std::string& statement) {
    pqxx::connection c(dsn());
    pqxx::nontransaction tx(c);
    return tx.exec(statement);
}

inline std::string unique_table(const std::string& prefix = "t") {
    static std::atomic<int> counter{0};
    return prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
}

// Polls `pred` until it holds or `timeout` passes.
inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s,
                       std::chrono::milliseconds step = 5ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (pred()) return true;
        std::this_thread::sleep_for(step);
    }
    return pred();
}

// Short leases so expiry tests run in about a second.
inline LeaseTiming fast_timing() {
    LeaseTiming t;
    t.lease_duration = 1000ms;
    t.renew_deadline = 700ms;
    t.heartbeat_interval = 200ms;
    t.retry_interval = 50ms;
    return t;
}

// Leases for tests whose property does not depend on a short lease (a handoff
// through a release, a lock that must stay held, renewals on a new connection).
// On two cores with CPU-bound processes beside the suite a thread can wait
// seconds for the CPU; a 700 ms renew deadline then lapses through the load
// alone.  A 4 s deadline does not, and a lease of 5 s keeps a release-driven
// handoff (well under a second) clearly apart from a takeover after a lease.
// Valid under the renewal rule: 500 ms heartbeat + derived renewal timeout
// (2250 ms) + its grace (562 ms) + retry pause (125 ms) < 4 s.
inline LeaseTiming loaded_timing() {
    LeaseTiming t;
    t.lease_duration = 5000ms;
    t.renew_deadline = 4000ms;
    t.heartbeat_interval = 500ms;
    t.retry_interval = 50ms;
    return t;
}

// Options for a client of `table`.  Run through a pooler in transaction mode
// (PGELECT_TEST_POOLING=transaction, set by the pooler suite's CMake entry),
// clients use Pooling::transaction and LISTEN on PGELECT_TEST_LISTEN_DSN
// (the server itself) when it is set.
inline LockClientOptions options_for(const std::string& table, LeaseTiming timing = fast_timing()) {
    LockClientOptions o;
    o.table = table;
    o.timing = timing;
    const char* pooling = std::getenv("PGELECT_TEST_POOLING");
    if (pooling != nullptr && std::string(pooling) == "transaction") o.pooling = Pooling::transaction;
    const char* listen = std::getenv("PGELECT_TEST_LISTEN_DSN");
    if (listen != nullptr && *listen != '\0') o.listen_dsn = listen;
    return o;
}

// A fixture with its own lock table, dropped afterwards.
class LockTableTest : public ::testing::Test {
protected:
    void SetUp() override {
        table_ = unique_table();
        client_ = std::make_unique<LockClient>(dsn(), options_for(table_));
        client_->create_table();
    }
    void TearDown() override {
        client_.reset();
        try {
            LockClient(dsn(), options_for(table_)).drop_table();
        } catch (...) {
        }
    }
    std::unique_ptr<LockClient> make_client(LeaseTiming timing = fast_timing(),
                                            std::string owner = {}) {
        auto o = options_for(table_, timing);
        o.owner = std::move(owner);
        return std::make_unique<LockClient>(dsn(), o);
    }

    std::string table_;
    std::unique_ptr<LockClient> client_;
};

}  // namespace pgelect::test
