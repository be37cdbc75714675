// The main loop of `pgelect run`: campaigns with an Elector and runs the command
// only while this process leads.
//
// Threads: the main thread owns the command and runs the loop.  The elector's
// thread (its signals) and the lock client's renewal and deadline threads (a
// term's stop_token, which fires the moment the lease is lost) push events
// into a queue the loop polls, next to a signalfd for SIGCHLD, SIGINT, SIGTERM
// and SIGHUP.  Two things do not wait for the loop: a lost lease tells the
// command's guard to stop it at once (from the thread that noticed), and every
// successful renewal moves the guard's deadline (from the renewal thread).
// While the loop does not run (pgelect stopped or starved), the guard stops
// the command at its deadline on its own.
#pragma once

#include <signal.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <variant>

#include "cli/child.hpp"
#include "cli/common.hpp"
#include "cli/event_queue.hpp"
#include "cli/lease_bound.hpp"
#include "pgelect/elector.hpp"

namespace pgelect::cli {

struct SupervisorSettings {
    Connection connection;
    ElectorOptions elector;
    Duration grace{std::chrono::seconds(3)};
    bool create_table = false;
    std::string metrics_listen;  // empty: no metrics endpoint
    CommandSpec command;         // env without the PGELECT_* variables added per term
    std::string command_name;    // for messages
};

class Supervisor {
  public:
    // signal_fd: a signalfd for SIGCHLD, SIGINT, SIGTERM and SIGHUP, which the
    // calling thread (and every thread started later) keeps blocked.
    Supervisor(SupervisorSettings settings, int signal_fd);
    ~Supervisor();

    // Campaigns until the command exits on its own while leading, or a
    // termination signal arrives; then resigns.  Returns the exit status.
    int run();

  private:
    struct Elected {
        Leadership term;
    };
    struct TermEnded {
        std::int64_t token;
    };
    struct Lost {
        LossInfo loss;
    };
    struct LeaderSeen {
        std::optional<LeaderInfo> leader;
    };
    using Event = std::variant<Elected, TermEnded, Lost, LeaderSeen>;

    struct Child {
        std::unique_ptr<Supervised> process;
        std::int64_t token = 0;
        std::unique_ptr<std::stop_callback<std::function<void()>>> on_term_end;
        std::optional<std::chrono::steady_clock::time_point> kill_at;  // set once stopping
        bool killed = false;
    };

    void loop();
    void read_signals();
    void on_signal(int sig);
    void on_event(Elected& e);
    void on_event(TermEnded& e);
    void on_event(Lost& e);
    void on_event(LeaderSeen& e);
    void start_command(const Leadership& term);
    void stop_command(int sig, const std::string& why);
    void on_guard_message();
    void reap();
    void drop_child();
    // From any thread: moves the current command's guard deadline, or stops it now.
    void extend_guard(BootTime deadline);
    void expire_guard(std::int64_t token);
    void note(const std::string& message) const;

    // constant after construction
    const SupervisorSettings settings_;
    const int signal_fd_;
    std::string identity_;                // set once the elector exists
    Elector* elector_ = nullptr;          // set once the elector exists
    std::unique_ptr<LeaseBound> bound_;   // set before the campaign starts

    EventQueue<Event> events_;  // filled from any thread

    // The running command's guard, for the library's threads.
    std::mutex guard_mu_;
    Supervised* guard_ = nullptr;  // guarded by guard_mu_
    std::int64_t guard_token_ = 0;  // guarded by guard_mu_
    std::stop_token guard_term_;    // guarded by guard_mu_

    // main thread only
    std::optional<Child> child_;
    std::optional<Leadership> pending_;  // a term won while the previous command was still stopping
    int stop_signal_ = 0;                // the termination signal received, if any
    std::optional<int> exit_code_;
    bool done_ = false;
};

}  // namespace pgelect::cli
