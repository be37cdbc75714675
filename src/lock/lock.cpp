#include "pgelect/lock.hpp"

#include "lock/client_core.hpp"
#include "pgelect/errors.hpp"
#include "pgelect/log.hpp"

namespace pgelect {

Lock::Lock(std::shared_ptr<detail::ClientCore> core, std::shared_ptr<detail::LockState> state)
    : core_(std::move(core)), state_(std::move(state)) {}

Lock::Lock(Lock&&) noexcept = default;

Lock& Lock::operator=(Lock&& other) noexcept {
    if (this != &other) {
        Lock old(std::move(*this));  // releases what this handle held
        core_ = std::move(other.core_);
        state_ = std::move(other.state_);
    }
    return *this;
}

Lock::~Lock() {
    if (!state_) return;
    if (is_released()) {
        core_->forget(state_);  // an expired lock leaves the renewal set at once
        return;
    }
    try {
        core_->release(state_);
    } catch (const std::exception& e) {
        log(LogLevel::error,
            "releasing lock \"" + state_->name + "\" on destruction failed: " + e.what());
    }
}

const std::string& Lock::name() const { return state_->name; }
const std::string& Lock::owner() const { return state_->owner; }

std::string Lock::data() const {
    std::lock_guard lk(state_->mu);
    return state_->data;
}

std::int64_t Lock::record_version_number() const {
    std::lock_guard lk(state_->mu);
    return state_->record_version_number;
}

std::int64_t Lock::fencing_token() const {
    std::lock_guard lk(state_->mu);
    return state_->fencing_token;
}

bool Lock::is_released() const {
    return !state_ || !state_->valid(core_->clock().now());
}

std::chrono::steady_clock::time_point Lock::valid_until() const {
    detail::BootClock::time_point until;
    {
        std::lock_guard lk(state_->mu);
        until = state_->valid_until;
    }
    return core_->clock().to_steady(until);
}

std::stop_token Lock::lost_token() const { return state_->lost.get_token(); }

LossCause Lock::loss_cause() const {
    if (!state_) return LossCause::released;
    std::lock_guard lk(state_->mu);
    if (!state_->released && core_->clock().now() >= state_->valid_until) {
        return LossCause::deadline_passed;  // the timer thread has not noticed yet
    }
    return state_->cause;
}

std::string Lock::loss_reason() const {
    if (!state_) return "moved from";
    std::lock_guard lk(state_->mu);
    return state_->released ? state_->release_reason : "";
}

std::string_view to_string(LossCause cause) noexcept {
    switch (cause) {
        case LossCause::none: return "none";
        case LossCause::released: return "released";
        case LossCause::taken_over: return "taken_over";
        case LossCause::deadline_passed: return "deadline_passed";
        case LossCause::renewal_failed: return "renewal_failed";
        case LossCause::database_unavailable: return "database_unavailable";
        case LossCause::client_closed: return "client_closed";
    }
    return "none";
}

void Lock::release() {
    if (!state_) throw AlreadyReleasedError("release: this Lock handle was moved from");
    core_->release(state_);
}

void Lock::abandon() {
    if (!state_) return;
    core_->abandon(state_);
}

void Lock::set_data(const std::string& data) {
    if (!state_) throw AlreadyReleasedError("set data: this Lock handle was moved from");
    core_->set_data(state_, data);
}

}  // namespace pgelect
