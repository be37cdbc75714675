#include "cli/supervisor.hpp"

#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "pgelect/lock_client.hpp"
#include "pgelect/metrics.hpp"

namespace pgelect::cli {
namespace {

using Clock = std::chrono::steady_clock;

std::string signal_name(int sig) {
    const char* abbrev = sigabbrev_np(sig);
    return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

std::string seconds(Duration d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%gs", static_cast<double>(d.count()) / 1000.0);
    return buf;
}

}  // namespace

Supervisor::Supervisor(SupervisorSettings settings, int signal_fd)
    : settings_(std::move(settings)), signal_fd_(signal_fd) {}

Supervisor::~Supervisor() = default;

int Supervisor::run() {
    // The metrics endpoint first: a port in use fails before campaigning.
    std::shared_ptr<prometheus::Registry> registry;
    std::unique_ptr<Metrics> metrics;
    std::unique_ptr<MetricsServer> server;
    if (!settings_.metrics_listen.empty()) {
        registry = std::make_shared<prometheus::Registry>();
        metrics = std::make_unique<Metrics>(*registry);
        try {
            server = std::make_unique<MetricsServer>(settings_.metrics_listen, registry);
        } catch (const UnavailableError& e) {
            // Cannot listen (e.g. the port is taken): not a database problem, so not exit 3.
            throw std::runtime_error(std::string("--metrics-listen: ") + e.what());
        }
    }

    LockClient client(settings_.connection.dsn, settings_.connection.options);
    if (settings_.create_table) {
        client.try_create_table();
    } else {
        // Fail now (exit 3 or 4) rather than campaign against a missing table
        // or an unreachable database.
        try {
            (void)client.get(settings_.elector.group);
        } catch (const NotFoundError&) {
        }
    }
    Elector elector(client, settings_.elector);
    identity_ = elector.identity();
    elector.become_leader.connect([this](const Leadership& term) { events_.push(Elected{term}); });
    elector.lost_leadership.connect([this](const LossInfo& loss) { events_.push(Lost{loss}); });
    elector.leader_changed.connect(
        [this](const std::optional<LeaderInfo>& leader) { events_.push(LeaderSeen{leader}); });
    if (metrics) {
        metrics->attach(elector, client);
        note("metrics on " + server->url());
    }

    // Unwinding must stop the command before ~Elector resigns.
    struct StopCommandFirst {
        Supervisor& self;
        ~StopCommandFirst() { self.child_.reset(); }
    } stop_command_first{*this};

    note("campaigning for group " + settings_.elector.group + " in table " +
         settings_.connection.options.table);
    elector.start();
    loop();
    child_.reset();
    elector.stop();  // resigns if still leading: followers are woken by NOTIFY
    for (Event& event : events_.take()) {
        if (auto* lost = std::get_if<Lost>(&event)) on_event(*lost);  // report the resignation
    }
    if (exit_code_) return *exit_code_;
    return exit_ok;  // stopped by a signal while no command ran
}

void Supervisor::loop() {
    while (!done_) {
        int timeout_ms = -1;
        if (child_ && child_->kill_at && !child_->killed) {
            const auto left =
                std::chrono::ceil<std::chrono::milliseconds>(*child_->kill_at - Clock::now());
            timeout_ms =
                static_cast<int>(std::max<std::chrono::milliseconds::rep>(0, left.count()));
        }
        struct pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {events_.fd(), POLLIN, 0}};
        if (::poll(fds, 2, timeout_ms) < 0) {
            if (errno == EINTR) continue;
            throw std::system_error(errno, std::generic_category(), "poll");
        }
        if ((fds[0].revents & POLLIN) != 0) read_signals();
        if ((fds[1].revents & POLLIN) != 0) {
            for (Event& event : events_.take()) {
                std::visit([this](auto& e) { on_event(e); }, event);
            }
        }
        if (child_ && child_->kill_at && !child_->killed && Clock::now() >= *child_->kill_at) {
            note(
                "the command did not stop within the grace period: sending SIGKILL to process "
                "group " +
                std::to_string(child_->process->process_group()));
            child_->process->signal_group(SIGKILL);
            child_->killed = true;
        }
    }
}

void Supervisor::read_signals() {
    struct signalfd_siginfo info;
    while (::read(signal_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        on_signal(static_cast<int>(info.ssi_signo));
    }
}

void Supervisor::on_signal(int sig) {
    if (sig == SIGCHLD) {
        reap();
        return;
    }
    if (stop_signal_ != 0) {
        // A second request: no more grace.
        if (child_ && !child_->killed) {
            note("received " + signal_name(sig) + " again: sending SIGKILL to the command");
            child_->process->signal_group(SIGKILL);
            child_->killed = true;
        }
        return;
    }
    stop_signal_ = sig;
    pending_.reset();
    if (!child_) {
        note("received " + signal_name(sig) + ": stopping");
        done_ = true;
    } else if (!child_->kill_at) {
        stop_command(sig, "received " + signal_name(sig));
    }
}

void Supervisor::on_event(Elected& e) {
    note("became leader of group " + e.term.group + " (fencing token " +
         std::to_string(e.term.fencing_token) + ")");
    if (stop_signal_ != 0 || done_) return;
    if (child_) {
        pending_ = e.term;  // starts once the previous term's command is gone
        return;
    }
    start_command(e.term);
}

void Supervisor::on_event(TermEnded& e) {
    if (pending_ && pending_->fencing_token == e.token) pending_.reset();
    if (child_ && child_->token == e.token && !child_->kill_at) {
        stop_command(SIGTERM, "leadership ended (fencing token " + std::to_string(e.token) + ")");
    }
}

void Supervisor::on_event(Lost& e) {
    const LossInfo& loss = e.loss;
    const bool given_up = loss.reason == LossReason::resigned || loss.reason == LossReason::stopped;
    note(std::string(given_up ? "gave up" : "LOST") + " leadership of group " + loss.group +
         " (fencing token " + std::to_string(loss.fencing_token) + "): " +
         (given_up ? loss.message : std::string(to_string(loss.reason)) + ": " + loss.message));
    TermEnded ended{loss.fencing_token};
    on_event(ended);  // the stop_token has fired already; this is a safety net
}

void Supervisor::on_event(LeaderSeen& e) {
    if (!e.leader) {
        note("group " + settings_.elector.group + " has no leader");
    } else if (e.leader->identity != identity_) {
        note("following " + e.leader->identity + " (fencing token " +
             std::to_string(e.leader->fencing_token) + ")");
    }
}

void Supervisor::start_command(const Leadership& term) {
    Child child;
    child.token = term.fencing_token;
    // Registered before the check below: a term that ends from now on queues an
    // event, one that ended already is not started at all.
    child.on_term_end = std::make_unique<std::stop_callback<std::function<void()>>>(
        term.stop_token, [this, token = term.fencing_token] { events_.push(TermEnded{token}); });
    if (term.stop_token.stop_requested()) {
        note("term " + std::to_string(term.fencing_token) + " ended before the command started");
        return;
    }
    CommandSpec spec = settings_.command;
    spec.env.push_back("PGELECT_GROUP=" + term.group);
    spec.env.push_back("PGELECT_IDENTITY=" + term.identity);
    spec.env.push_back("PGELECT_FENCING_TOKEN=" + std::to_string(term.fencing_token));
    spec.env.push_back("PGELECT_TABLE=" + term.table);
    child.process = std::make_unique<Supervised>(spec);
    note("started " + settings_.command_name + " (process group " +
         std::to_string(child.process->process_group()) + ", fencing token " +
         std::to_string(term.fencing_token) + ")");
    child_ = std::move(child);
}

void Supervisor::stop_command(int sig, const std::string& why) {
    child_->kill_at = Clock::now() + settings_.grace;
    note(why + ": sending " + signal_name(sig) + " to " + settings_.command_name +
         " (process group " + std::to_string(child_->process->process_group()) +
         "), SIGKILL after " + seconds(settings_.grace));
    child_->process->signal_group(sig);
}

void Supervisor::reap() {
    if (!child_) return;
    const std::optional<int> status = child_->process->try_reap();
    if (!status) return;
    const bool stopping = child_->kill_at.has_value();
    child_.reset();
    note(settings_.command_name + " " + describe(*status));
    if (stop_signal_ != 0 || !stopping) {
        // Asked to stop, or the command ended on its own while leading: resign and exit.
        exit_code_ = exit_code_of(*status);
        done_ = true;
        return;
    }
    // Stopped because the term ended: follow, and run it again if elected again.
    if (pending_) {
        const Leadership term = *pending_;
        pending_.reset();
        start_command(term);
    }
}

void Supervisor::note(const std::string& message) const {
    say(message, identity_);
}

}  // namespace pgelect::cli
