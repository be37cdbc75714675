// A command run in its own process group that cannot outlive pgelect.
//
// pgelect forks a small guard process that leads a new process group, and the
// guard forks and executes the command in that group.  The guard holds the read
// end of a pipe whose write end only pgelect holds: when pgelect dies for any
// reason, even SIGKILL, the guard sees end-of-file and SIGKILLs the whole
// process group, grandchildren included (consul#2022: a grandchild survived its
// shell).  The command itself also gets PR_SET_PDEATHSIG(SIGKILL) against its
// guard.  A descendant that moves to another process group or session escapes;
// nothing short of a cgroup catches that.
//
// The guard also enforces a deadline of its own, so that no command outlives
// its leadership even while pgelect is stopped (SIGSTOP, a debugger), starved
// or blocked: pgelect moves the deadline on after every successful renewal
// (set_deadline); when it passes without a move, the guard SIGTERMs the group
// and SIGKILLs it after the grace period, whatever pgelect is doing.  The
// deadline is an instant of CLOCK_BOOTTIME, the same kernel clock in both
// processes, which also runs while the machine is suspended (a lease does).
//
// The guard exits the way the command did (same exit code, or killed by the
// same signal), so pgelect reads the command's status from the guard.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pgelect::cli {

struct CommandSpec {
    std::string path;               // resolved executable (see find_executable)
    std::vector<std::string> argv;  // argv[0] is the name as given
    std::vector<std::string> env;   // NAME=value, the complete environment
    sigset_t signal_mask{};         // restored in the command before exec
};

// An instant of CLOCK_BOOTTIME, in nanoseconds.
using BootTime = std::int64_t;
BootTime boot_now();

// PATH lookup as execvp does it, done before forking.  nullopt if not found.
std::optional<std::string> find_executable(const std::string& name);

// One started command.  Not thread-safe: owned by pgelect's main thread.
// SIGCHLD must be blocked in the calling thread (pgelect reads it from a signalfd).
class Supervised {
  public:
    // Forks the guard and the command.  The guard stops the command at
    // `deadline` unless set_deadline() moves it; SIGKILL follows `grace_ns`
    // after its SIGTERM.  Throws std::system_error if fork fails.
    Supervised(const CommandSpec& spec, BootTime deadline, std::int64_t grace_ns);
    // If the guard has not been reaped: SIGKILLs the process group and reaps it.
    ~Supervised();
    Supervised(const Supervised&) = delete;
    Supervised& operator=(const Supervised&) = delete;

    // The process group id (the guard's pid).
    pid_t process_group() const { return guard_; }
    // Sends `sig` to every process of the group.
    void signal_group(int sig) const;
    // Moves the guard's deadline (a deadline already passed stays passed; one
    // not later than now stops the command at once).  Never blocks; safe from
    // any thread while this object lives.  False if the guard did not get it.
    bool set_deadline(BootTime deadline) const;
    // set_deadline(now): the guard SIGTERMs the group, and SIGKILLs it after the grace period.
    bool expire() const { return set_deadline(0); }
    // Readable (POLLIN) once the guard's deadline has passed (or the guard is gone).
    int guard_fd() const { return control_fd_; }
    // Consumes what guard_fd() has to say; true once the guard's deadline has passed.
    bool deadline_passed();
    // True once deadline_passed() found the guard's end closed (it exited).
    bool guard_closed() const { return guard_closed_; }

    // If the guard has exited: SIGKILLs whatever the command left behind in its
    // group, reaps the guard and returns its wait status.  Never blocks otherwise.
    std::optional<int> try_reap();

  private:
    pid_t guard_ = -1;
    int control_fd_ = -1;  // pgelect's end of the socket pair the guard watches
    bool reaped_ = false;
    bool deadline_passed_ = false;
    bool guard_closed_ = false;
};

// 128 + signal for a killed process, else the exit code (shell convention).
int exit_code_of(int wait_status);
// "exited with status 3" / "killed by signal 15 (Terminated)"
std::string describe(int wait_status);

}  // namespace pgelect::cli
