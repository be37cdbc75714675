#include "pgelect/lock_client.hpp"

#include "lock/client_core.hpp"
#include "lock/client_factory.hpp"
#include "lock/clock.hpp"
#include "lock/pg_store.hpp"
#include "lock/statements.hpp"

namespace pgelect {

namespace detail {
std::unique_ptr<LockClient> ClientFactory::make(std::shared_ptr<LockStore> store,
                                                std::shared_ptr<Clock> clock,
                                                LockClientOptions options) {
    return std::unique_ptr<LockClient>(new LockClient(
        std::make_shared<ClientCore>(std::move(store), std::move(clock), std::move(options))));
}

StopLink::StopLink(std::stop_token a, std::stop_token b)
    : a_(std::move(a), [this] { source_.request_stop(); }),
      b_(std::move(b), [this] { source_.request_stop(); }) {}
}  // namespace detail

LockClient::LockClient(std::string dsn, LockClientOptions options)
    : LockClient(std::make_shared<detail::ClientCore>(
          std::make_shared<detail::PgStore>(dsn, options), detail::real_clock(), options)) {}

LockClient::LockClient(std::shared_ptr<detail::ClientCore> core) : core_(std::move(core)) {
    connect_hooks();
}

void LockClient::connect_hooks() {
    detail::ClientCore::Hooks hooks;
    hooks.renewal = [this](const RenewalReport& r) { renewal_finished(r); };
    hooks.renewal_wanted = [this] { return !renewal_finished.empty(); };
    hooks.attempt = [this](const std::string& name, AttemptResult result) {
        acquire_attempted(name, result);
    };
    hooks.unknown_outcome = [this](const UnknownOutcome& u) { outcome_unknown(u); };
    hooks.timeline = [this](std::int64_t timeline) { timeline_seen(timeline); };
    core_->set_hooks(std::move(hooks));
}

std::string_view to_string(AttemptResult result) noexcept {
    switch (result) {
        case AttemptResult::acquired: return "acquired";
        case AttemptResult::busy: return "busy";
        case AttemptResult::error: return "error";
    }
    return "error";
}

LockClient::~LockClient() { core_->shutdown(); }

void LockClient::create_table() { core_->create_table(); }
void LockClient::try_create_table() { core_->try_create_table(); }
void LockClient::drop_table() { core_->drop_table(); }
std::int64_t LockClient::bump_epoch(std::int64_t above) { return core_->bump_epoch(above); }

Lock LockClient::acquire(const std::string& name, const AcquireOptions& options,
                         std::stop_token stop) {
    return core_->acquire(name, options, std::move(stop));
}

Lock LockClient::try_acquire(const std::string& name, const AcquireOptions& options) {
    AcquireOptions o = options;
    o.fail_if_locked = true;
    return core_->acquire(name, o, {});
}

LockInfo LockClient::get(const std::string& name) { return core_->get(name); }
std::vector<LockInfo> LockClient::get_all() { return core_->get_all(); }
ReplicationInfo LockClient::replication_info() { return core_->replication_info(); }

std::string ReplicationInfo::risk() const {
    if (standby || standbys.empty()) return "";
    std::string async;
    for (const auto& s : standbys) {
        if (s.sync_state == "sync" || s.sync_state == "quorum") continue;
        if (!async.empty()) async += ", ";
        async += (s.name.empty() ? std::string("?") : s.name) + " (" +
                 (s.sync_state.empty() ? std::string("state hidden") : s.sync_state) + ")";
    }
    if (!async.empty()) {
        return "standbys that do not confirm commits: " + async +
               "; a promotion of one may lose acknowledged acquisitions and renewals";
    }
    if (synchronous_commit == "off" || synchronous_commit == "local") {
        return "synchronous_commit is " + synchronous_commit +
               ": commits do not wait for the synchronous standbys";
    }
    return "";
}

void LockClient::heartbeat(Lock& lock) {
    if (!lock.state_) throw AlreadyReleasedError("heartbeat: this Lock handle was moved from");
    core_->heartbeat(lock.state_);
}

const LockClientOptions& LockClient::options() const { return core_->options(); }
const std::string& LockClient::owner() const { return core_->owner(); }

std::string schema_sql(const std::string& table) {
    return detail::Statements(detail::parse_table_name(table)).create;
}

}  // namespace pgelect
