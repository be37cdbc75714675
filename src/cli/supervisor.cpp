#include "cli/supervisor.hpp"

#include <poll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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
    // Connected before any lock exists: the guard's deadline follows the lease.
    const LeaseTiming& timing = *settings_.elector.timing;
    bound_ = std::make_unique<LeaseBound>(settings_.elector.group, timing.renew_deadline);
    client.acquire_attempted.connect([this](const std::string& name, AttemptResult result) {
        if (result == AttemptResult::acquired && name == settings_.elector.group) {
            bound_->acquired(boot_now());
        }
    });
    client.renewal_finished.connect([this](const RenewalReport& report) {
        if (const auto deadline = bound_->renewed(report, boot_now())) extend_guard(*deadline);
    });
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
    elector_ = &elector;
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
        ~StopCommandFirst() {
            self.drop_child();
            self.elector_ = nullptr;
        }
    } stop_command_first{*this};

    note("campaigning for group " + settings_.elector.group + " in table " +
         settings_.connection.options.table);
    elector.start();
    loop();
    drop_child();
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
        const bool watch_guard = child_ && !child_->process->guard_closed();
        struct pollfd fds[3] = {{signal_fd_, POLLIN, 0},
                                {events_.fd(), POLLIN, 0},
                                {watch_guard ? child_->process->guard_fd() : -1, POLLIN, 0}};
        if (::poll(fds, 3, timeout_ms) < 0) {
            if (errno == EINTR) continue;
            throw std::system_error(errno, std::generic_category(), "poll");
        }
        if ((fds[0].revents & POLLIN) != 0) read_signals();
        if (fds[2].revents != 0 && child_) on_guard_message();
        if ((fds[1].revents & POLLIN) != 0) {
            for (Event& event : events_.take()) {
                std::visit([this](auto& e) { on_event(e); }, event);
            }
        }
        if (child_ && child_->kill_at && !child_->killed && Clock::now() >= *child_->kill_at) {
            child_->process->signal_group(SIGKILL);
            child_->killed = true;
            note("the command did not stop within the grace period: sent SIGKILL to process group " +
                 std::to_string(child_->process->process_group()));
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
            child_->process->signal_group(SIGKILL);
            child_->killed = true;
            note("received " + signal_name(sig) + " again: sent SIGKILL to the command");
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
        // The guard signals (it was told already if the thread that ended the
        // term got to it); pgelect keeps its own SIGKILL as a backstop.
        child_->kill_at = Clock::now() + settings_.grace;
        const bool told = child_->process->expire();
        if (!told) child_->process->signal_group(SIGTERM);
        note("leadership ended (fencing token " + std::to_string(e.token) + "): " +
             (told ? "the guard sends SIGTERM to " : "sent SIGTERM to ") + settings_.command_name +
             " (process group " + std::to_string(child_->process->process_group()) +
             "), SIGKILL after " + seconds(settings_.grace));
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
    // Registered before the check below: a term that ends from now on stops
    // the command through its guard at once and queues an event; one that
    // ended already is not started at all.
    child.on_term_end = std::make_unique<std::stop_callback<std::function<void()>>>(
        term.stop_token, [this, token = term.fencing_token] {
            expire_guard(token);
            events_.push(TermEnded{token});
        });
    if (term.stop_token.stop_requested()) {
        note("term " + std::to_string(term.fencing_token) + " ended before the command started");
        return;
    }
    // The guard's first deadline: what the renewals since the acquisition
    // prove, and at least what healthy() proves (lease_bound.hpp).  Nothing
    // proven: the guard stops the command at once.
    const LeaseTiming& timing = *settings_.elector.timing;
    const BootTime now = boot_now();
    BootTime deadline = now;
    const bool healthy = elector_->healthy();
    const std::optional<Leadership> leading = elector_->leadership();
    if (healthy && leading && leading->fencing_token == term.fencing_token) {
        deadline = now + LeaseBound::to_ns(timing.renew_deadline) -
                   2 * LeaseBound::to_ns(timing.heartbeat_interval);
    }
    if (const auto proven = bound_->current()) deadline = std::max(deadline, *proven);

    CommandSpec spec = settings_.command;
    spec.env.push_back("PGELECT_GROUP=" + term.group);
    spec.env.push_back("PGELECT_IDENTITY=" + term.identity);
    spec.env.push_back("PGELECT_FENCING_TOKEN=" + std::to_string(term.fencing_token));
    spec.env.push_back("PGELECT_TABLE=" + term.table);
    child.process =
        std::make_unique<Supervised>(spec, deadline, LeaseBound::to_ns(settings_.grace));
    {
        std::lock_guard lk(guard_mu_);
        guard_ = child.process.get();
        guard_token_ = term.fencing_token;
        guard_term_ = term.stop_token;
    }
    // A renewal may have moved the bound while the guard was being started.
    if (const auto proven = bound_->current(); proven && *proven > deadline) {
        extend_guard(*proven);
    }
    if (term.stop_token.stop_requested()) child.process->expire();
    note("started " + settings_.command_name + " (process group " +
         std::to_string(child.process->process_group()) + ", fencing token " +
         std::to_string(term.fencing_token) + ")");
    child_ = std::move(child);
}

void Supervisor::stop_command(int sig, const std::string& why) {
    child_->process->signal_group(sig);
    child_->kill_at = Clock::now() + settings_.grace;
    note(why + ": sent " + signal_name(sig) + " to " + settings_.command_name + " (process group " +
         std::to_string(child_->process->process_group()) + "), SIGKILL after " +
         seconds(settings_.grace));
}

void Supervisor::on_guard_message() {
    if (!child_->process->deadline_passed() || child_->kill_at) return;
    // The guard's own deadline passed: renewals did not reach it in time
    // (pgelect stopped, starved, or its renewals slow).  It has signalled already.
    child_->kill_at = Clock::now() + settings_.grace;
    note("no renewal came in time: the guard sent SIGTERM to " + settings_.command_name +
         " (process group " + std::to_string(child_->process->process_group()) +
         "), SIGKILL after " + seconds(settings_.grace));
}

void Supervisor::extend_guard(BootTime deadline) {
    std::lock_guard lk(guard_mu_);
    if (guard_ != nullptr && !guard_term_.stop_requested()) guard_->set_deadline(deadline);
}

void Supervisor::expire_guard(std::int64_t token) {
    std::lock_guard lk(guard_mu_);
    if (guard_ != nullptr && guard_token_ == token) guard_->expire();
}

void Supervisor::drop_child() {
    {
        std::lock_guard lk(guard_mu_);
        guard_ = nullptr;
    }
    // Outside guard_mu_: destroying the stop callback waits for a running one.
    child_.reset();
}

void Supervisor::reap() {
    if (!child_) return;
    const std::optional<int> status = child_->process->try_reap();
    if (!status) return;
    const bool guard_stopped = child_->process->deadline_passed();
    const bool kill_at_set = child_->kill_at.has_value();
    const bool stopping = kill_at_set || guard_stopped;
    const bool killed_by_guard = stopping && !child_->killed && WIFSIGNALED(*status) &&
                                 WTERMSIG(*status) == SIGKILL;
    const std::int64_t token = child_->token;
    const pid_t group = child_->process->process_group();
    drop_child();
    if (guard_stopped && !kill_at_set) {
        note("no renewal came in time: the guard stopped " + settings_.command_name +
             " (process group " + std::to_string(group) + ")");
    }
    if (killed_by_guard) {
        note("the command did not stop within the grace period: its guard sent SIGKILL to "
             "process group " +
             std::to_string(group));
    }
    note(settings_.command_name + " " + describe(*status));
    if (stop_signal_ != 0 || !stopping) {
        // Asked to stop, or the command ended on its own while leading: resign and exit.
        exit_code_ = exit_code_of(*status);
        done_ = true;
        return;
    }
    // Stopped by its guard while this term may still be trusted (renewals came
    // late): give the term up, so that the group gets a new one and a command.
    if (const auto leading = elector_->leadership();
        leading && leading->fencing_token == token && !pending_) {
        note("the command was stopped while term " + std::to_string(token) +
             " still holds: resigning it");
        elector_->resign();
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
