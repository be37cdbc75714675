// A simulated user of a raw lock: one thread that acquires a group's lock on
// its own LockClient, holds it until the test asks it to release or abandon
// it (or it is lost), and campaigns again.  Every wait is on the FakeClock,
// so FakeClock::step() waits for it too.  The test thread reads its belief
// with believed_token() and sends requests; it never calls the store itself
// (a store call may block on the simulated clock the test thread drives).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>

#include "fake_clock.hpp"
#include "pgelect/errors.hpp"
#include "pgelect/lock.hpp"
#include "pgelect/lock_client.hpp"

namespace pgelect_test::sim {

class RawActor {
public:
    enum class Request { none, release, abandon };

    RawActor(std::unique_ptr<pgelect::LockClient> client, std::string group, bool keep_on_release,
             std::shared_ptr<FakeClock> clock)
        : client_(std::move(client)), group_(std::move(group)), clock_(std::move(clock)) {
        options_.data = client_->owner();
        options_.keep_on_release = keep_on_release;
        thread_ = std::thread([this] { run(); });
    }
    ~RawActor() { stop(); }
    RawActor(const RawActor&) = delete;
    RawActor& operator=(const RawActor&) = delete;

    // The fencing token of the lock this actor believes it holds now.
    std::optional<std::int64_t> believed_token() const {
        std::lock_guard lk(mu_);
        if (!held_ || held_->is_released()) return std::nullopt;
        return held_->fencing_token();
    }
    // Asks the actor to give up the lock it holds (ignored if it holds none).
    void request(Request r) {
        std::lock_guard lk(mu_);
        if (held_) request_ = r;
        cv_.notify_all();
    }
    // Releases what it holds (the store must not block any more) and joins.
    void stop() {
        stop_.request_stop();
        {
            std::lock_guard lk(mu_);
            cv_.notify_all();
        }
        if (thread_.joinable()) thread_.join();
    }
    std::thread::id thread_id() const { return thread_.get_id(); }
    pgelect::LockClient& client() { return *client_; }
    const std::string& group() const { return group_; }

private:
    void run() {
        const auto stop = stop_.get_token();
        while (!stop.stop_requested()) {
            std::optional<pgelect::Lock> lock;
            try {
                lock.emplace(client_->acquire(group_, options_, stop));
            } catch (const pgelect::NotAcquiredError&) {
                continue;  // stopped
            } catch (const pgelect::Error&) {
                next_instant(stop);  // the store failed: try again at the next step
                continue;
            }
            std::stop_callback wake(lock->lost_token(), [this] {
                std::lock_guard lk(mu_);
                cv_.notify_all();
            });
            Request r;
            {
                std::unique_lock lk(mu_);
                held_ = &*lock;
                request_ = Request::none;
                clock_->wait_until(cv_, lk, stop, FakeClock::time_point::max(),
                                   [&] { return request_ != Request::none || held_->is_released(); });
                r = request_;
            }
            try {
                if (r == Request::abandon) {
                    lock->abandon();
                } else if (r == Request::release || !lock->is_released()) {
                    lock->release();  // asked to, or stopping
                }
            } catch (const pgelect::Error&) {
            }
            {
                std::lock_guard lk(mu_);
                held_ = nullptr;
                request_ = Request::none;
            }
            // Destroyed here, outside mu_: released or lost by now, so the
            // destructor sends nothing.
        }
    }

    void next_instant(const std::stop_token& stop) {
        std::unique_lock lk(mu_);
        const auto until = clock_->now() + std::chrono::nanoseconds(1);
        clock_->wait_until(cv_, lk, stop, until, [] { return false; });
    }

    // constant after construction
    const std::unique_ptr<pgelect::LockClient> client_;
    const std::string group_;
    const std::shared_ptr<FakeClock> clock_;
    pgelect::AcquireOptions options_;

    mutable std::mutex mu_;
    std::condition_variable_any cv_;
    const pgelect::Lock* held_ = nullptr;  // guarded by mu_; owned by the thread
    Request request_ = Request::none;      // guarded by mu_
    std::stop_source stop_;
    std::thread thread_;
};

}  // namespace pgelect_test::sim
