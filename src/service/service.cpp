#include "pgelect/service.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <condition_variable>
#include <mutex>

#include "pgelect/metrics.hpp"

namespace pgelect {
namespace detail {
namespace {

// run()'s signal handling: the handler only writes a byte to a pipe.
int g_signal_pipe[2] = {-1, -1};
extern "C" void on_stop_signal(int) {
    const char byte = 1;
    [[maybe_unused]] auto n = ::write(g_signal_pipe[1], &byte, 1);
}

}  // namespace

class ServiceImpl {
public:
    explicit ServiceImpl(Config config)
        : config_(std::move(config)),
          client_(config_.database.dsn, config_.lock_client_options()),
          registry_(std::make_shared<prometheus::Registry>()),
          metrics_(*registry_) {
        if (config_.groups.empty()) {
            throw InvalidArgumentError("election service: no groups configured");
        }
        for (const auto& g : config_.groups) {
            auto [it, fresh] =
                electors_.emplace(g.name, std::make_unique<Elector>(client_, config_.elector_options(g)));
            if (!fresh) throw InvalidArgumentError("election service: duplicate group \"" + g.name + "\"");
            metrics_.attach(*it->second, client_);
        }
        if (!config_.metrics.listen.empty()) {
            server_ = std::make_unique<MetricsServer>(config_.metrics.listen, registry_,
                                                      config_.metrics.path);
        }
    }

    ~ServiceImpl() { stop(); }

    Elector& elector(const std::string& group) {
        auto it = electors_.find(group);
        if (it == electors_.end()) {
            std::string known;
            for (const auto& [name, _] : electors_) known += (known.empty() ? "" : ", ") + name;
            throw InvalidArgumentError("election service: no group \"" + group +
                                       "\" is configured (groups: " + known + ")");
        }
        return *it->second;
    }

    void start() {
        if (config_.database.create_table) client_.try_create_table();
        for (auto& [_, e] : electors_) e->start();
    }

    void stop() {
        for (auto& [_, e] : electors_) e->stop();
        {
            std::lock_guard lk(mu_);
            stop_requested_ = true;
        }
        cv_.notify_all();
    }

    int run(bool handle_signals) {
        start();
        if (handle_signals) {
            wait_for_signal();
        } else {
            std::unique_lock lk(mu_);
            cv_.wait(lk, [&] { return stop_requested_; });
        }
        stop();
        return 0;
    }

    void request_stop() {
        {
            std::lock_guard lk(mu_);
            stop_requested_ = true;
        }
        cv_.notify_all();
        if (g_signal_pipe[1] >= 0) on_stop_signal(0);
    }

    std::string metrics_url() const { return server_ ? server_->url() : ""; }

    const Config config_;
    LockClient client_;
    std::shared_ptr<prometheus::Registry> registry_;
    Metrics metrics_;
    std::map<std::string, std::unique_ptr<Elector>> electors_;
    std::unique_ptr<MetricsServer> server_;

private:
    void wait_for_signal() {
        if (g_signal_pipe[0] < 0) {
            if (::pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
                throw Error(ErrorKind::other, "election service: cannot create a pipe for signals");
            }
        }
        struct sigaction sa {};
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        struct sigaction old_int {}, old_term {};
        ::sigaction(SIGINT, &sa, &old_int);
        ::sigaction(SIGTERM, &sa, &old_term);
        for (;;) {
            {
                std::lock_guard lk(mu_);
                if (stop_requested_) break;
            }
            pollfd p{g_signal_pipe[0], POLLIN, 0};
            if (::poll(&p, 1, 200) > 0) {
                char buf[16];
                while (::read(g_signal_pipe[0], buf, sizeof buf) > 0) {
                }
                break;
            }
        }
        ::sigaction(SIGINT, &old_int, nullptr);
        ::sigaction(SIGTERM, &old_term, nullptr);
    }

    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_requested_ = false;  // guarded by mu_
};

}  // namespace detail

std::unique_ptr<ElectionService> ElectionService::from_yaml(const std::string& path) {
    return std::make_unique<ElectionService>(load_config(path));
}

ElectionService::ElectionService(Config config)
    : impl_(std::make_unique<detail::ServiceImpl>(std::move(config))) {}

ElectionService::~ElectionService() = default;

void ElectionService::on_become_leader(const std::string& group,
                                       std::function<void(const Leadership&)> fn) {
    impl_->elector(group).become_leader.connect(std::move(fn));
}
void ElectionService::on_lost_leadership(const std::string& group,
                                         std::function<void(const LossInfo&)> fn) {
    impl_->elector(group).lost_leadership.connect(std::move(fn));
}
void ElectionService::on_leader_changed(const std::string& group,
                                        std::function<void(const std::optional<LeaderInfo>&)> fn) {
    impl_->elector(group).leader_changed.connect(std::move(fn));
}

void ElectionService::start() { impl_->start(); }
void ElectionService::stop() { impl_->stop(); }
int ElectionService::run(bool handle_signals) { return impl_->run(handle_signals); }
void ElectionService::request_stop() { impl_->request_stop(); }
Elector& ElectionService::elector(const std::string& group) { return impl_->elector(group); }
LockClient& ElectionService::client() { return impl_->client_; }
prometheus::Registry& ElectionService::registry() { return *impl_->registry_; }
const Config& ElectionService::config() const { return impl_->config_; }
std::string ElectionService::metrics_url() const { return impl_->metrics_url(); }

}  // namespace pgelect
