// pgelect run: settings from flags and configuration, signal setup, then the
// supervisor loop (supervisor.cpp).
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include "cli/commands.hpp"
#include "cli/supervisor.hpp"
#include "pgelect/log.hpp"

extern char** environ;

namespace pgelect::cli {
namespace {

// The environment of this process without the variables set per term.
std::vector<std::string> inherited_environment() {
    static const char* const kOwn[] = {
        "PGELECT_GROUP=", "PGELECT_IDENTITY=", "PGELECT_FENCING_TOKEN=", "PGELECT_TABLE="};
    std::vector<std::string> env;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        const std::string entry(*e);
        const bool own = std::any_of(std::begin(kOwn), std::end(kOwn),
                                     [&](const char* p) { return entry.rfind(p, 0) == 0; });
        if (!own) env.push_back(entry);
    }
    return env;
}

// Flags over the configuration's group (or defaults) over the library's defaults.
ElectorOptions elector_options(const RunArgs& args, const Connection& c) {
    ElectorOptions eo;
    if (c.config) {
        const auto& groups = c.config->groups;
        const auto it = std::find_if(groups.begin(), groups.end(),
                                     [&](const GroupConfig& g) { return g.name == args.group; });
        if (it != groups.end()) {
            eo = c.config->elector_options(*it);
        } else {
            eo.identity = c.config->identity;
            eo.timing = c.config->defaults;
            eo.release_on_stop = c.config->release_on_stop;
        }
    }
    eo.group = args.group;
    if (!args.identity.empty()) eo.identity = args.identity;
    if (!args.data.empty()) eo.data = args.data;
    LeaseTiming t = eo.timing.value_or(c.options.timing);
    if (!args.lease.empty()) t.lease_duration = to_duration(args.lease);
    if (!args.renew_deadline.empty()) t.renew_deadline = to_duration(args.renew_deadline);
    if (!args.heartbeat.empty()) t.heartbeat_interval = to_duration(args.heartbeat);
    if (!args.retry.empty()) t.retry_interval = to_duration(args.retry);
    validate_timing(t);
    eo.timing = t;
    return eo;
}

std::string duration_text(Duration d) {
    return d.count() % 1000 == 0 ? std::to_string(d.count() / 1000) + "s"
                                 : std::to_string(d.count()) + "ms";
}

}  // namespace

int run(const RunArgs& args) {
    SupervisorSettings s;
    s.connection = resolve_connection(args.connection);
    s.elector = elector_options(args, s.connection);
    // Every client of a table must use the same lease: the client's timing is the group's.
    s.connection.options.timing = *s.elector.timing;
    s.grace = to_duration(args.grace);
    const LeaseTiming& t = *s.elector.timing;
    if (t.heartbeat_interval.count() == 0) {
        // The guard's deadline follows renewals (supervisor.hpp); without them it has none.
        throw InvalidArgumentError("pgelect run needs automatic renewals: --heartbeat must be > 0");
    }
    if (t.renew_deadline <= 3 * t.heartbeat_interval) {
        // The guard's first deadline is renew deadline - 2 heartbeats after the
        // command starts; the term's first renewal comes a heartbeat after the acquisition.
        say("warning: renew deadline " + duration_text(t.renew_deadline) +
                " is not above three heartbeats (" + duration_text(t.heartbeat_interval) +
                "): the guard may stop the command before the term's first renewal reaches it",
            s.elector.identity);
    }
    // The command gets SIGTERM at the latest at the renew deadline (its guard's
    // deadline is earlier still) and SIGKILL a grace period later; a successor
    // may start at the lease.  Both are measured from the same renewal, on two
    // machines' clocks: keep a tenth of the lease in reserve for clock rates,
    // a SIGKILLed process still being torn down and the successor's own delays.
    const Duration margin = t.lease_duration - t.renew_deadline - s.grace;
    if (margin < t.lease_duration / 10) {
        say("warning: renew deadline " + duration_text(t.renew_deadline) + " + grace " +
                duration_text(s.grace) + " leaves " +
                (margin.count() < 0 ? "nothing" : duration_text(margin)) + " of the lease " +
                duration_text(t.lease_duration) +
                " (less than a tenth): after a lost lease this command may still run when the "
                "next leader's starts",
            s.elector.identity);
    }
    s.create_table =
        args.create_table || (s.connection.config && s.connection.config->database.create_table);
    s.metrics_listen = args.metrics_listen;

    const std::optional<std::string> path = find_executable(args.command.front());
    if (!path) {
        say(args.command.front() + ": command not found");
        return exit_not_found;
    }
    s.command.path = *path;
    s.command.argv = args.command;
    s.command.env = inherited_environment();
    s.command_name = args.command.front();

    // SIGCHLD ignored would make the kernel reap the command unseen.
    ::signal(SIGCHLD, SIG_DFL);
    // Before any thread exists, so that every thread inherits the mask and the
    // signals are only ever read from the signalfd.  A termination signal
    // ignored at start (nohup, a script's background job) stays ignored, for
    // pgelect and its command, as shells do it.
    sigset_t handled;
    sigemptyset(&handled);
    sigaddset(&handled, SIGCHLD);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
        struct sigaction current {};
        if (::sigaction(sig, nullptr, &current) == 0 && current.sa_handler != SIG_IGN) {
            sigaddset(&handled, sig);
        }
    }
    if (int err = ::pthread_sigmask(SIG_BLOCK, &handled, &s.command.signal_mask); err != 0) {
        throw std::system_error(err, std::generic_category(), "pthread_sigmask");
    }
    const int signal_fd = ::signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signal_fd < 0) throw std::system_error(errno, std::generic_category(), "signalfd");
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{signal_fd};

    // The library's messages (from its own threads) go the same non-blocking way as ours.
    set_log_sink([](LogLevel, std::string_view message) { say(std::string(message)); });
    Supervisor supervisor(std::move(s), signal_fd);
    return supervisor.run();
}

}  // namespace pgelect::cli
