#include "cli/child.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <system_error>

namespace pgelect::cli {
namespace {

// The guard and the command are forked from a multi-threaded process: until
// exec (or _exit) they make async-signal-safe system calls only: no malloc, no
// locks, no stdio.

constexpr int kControlFd = 3;  // the guard's end of the control socket pair, after dup2

// The guard tells pgelect (one byte on the control socket) that its deadline passed.
constexpr char kDeadlinePassed = 'D';

// Arms `tfd` (CLOCK_BOOTTIME) for the absolute instant `at`; one already passed
// fires at once (0 would disarm it).
void arm(int tfd, BootTime at) {
    if (at < 1) at = 1;
    struct itimerspec spec {};
    spec.it_value.tv_sec = static_cast<time_t>(at / 1000000000);
    spec.it_value.tv_nsec = static_cast<long>(at % 1000000000);
    ::timerfd_settime(tfd, TFD_TIMER_ABSTIME, &spec, nullptr);
}

void write_all(const char* s) {
    std::size_t n = std::strlen(s);
    while (n > 0) {
        const ssize_t w = ::write(STDERR_FILENO, s, n);
        if (w <= 0) return;
        s += w;
        n -= static_cast<std::size_t>(w);
    }
}

[[noreturn]] void exec_command(pid_t guard, const char* path, char* const* argv, char* const* envp,
                               const sigset_t& mask) {
    // Dies with its guard; the guard may have died before prctl took effect.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != guard) ::_exit(128 + SIGKILL);
    ::sigprocmask(SIG_SETMASK, &mask, nullptr);
    ::close_range(3, ~0U, 0);
    ::execve(path, argv, envp);
    const int err = errno;
    write_all("pgelect: cannot execute ");
    write_all(path);
    write_all(": ");
    write_all(strerrordesc_np(err));
    write_all("\n");
    ::_exit(err == ENOENT ? 127 : 126);
}

// Leaves the guard the way the command left.
[[noreturn]] void exit_like(int status) {
    if (WIFEXITED(status)) ::_exit(WEXITSTATUS(status));
    const int sig = WTERMSIG(status);
    struct rlimit no_core {};
    ::setrlimit(RLIMIT_CORE, &no_core);  // the command may have dumped core; the guard need not
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(sig, &dfl, nullptr);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
    ::kill(::getpid(), sig);
    ::_exit(128 + sig);
}

[[noreturn]] void guard_main(int control, int control_peer, const char* path, char* const* argv,
                             char* const* envp, const sigset_t& mask, BootTime deadline,
                             std::int64_t grace_ns) {
    ::close(control_peer);
    if (control != kControlFd) {
        ::dup2(control, kControlFd);
    }
    ::close_range(kControlFd + 1, ~0U, 0);  // pgelect's sockets, signalfd, eventfd...
    // Termination signals sent to the group are for the command: the guard keeps
    // them blocked (inherited from pgelect's main thread) and waits for the command.
    sigset_t blocked;
    sigemptyset(&blocked);
    for (int sig : {SIGCHLD, SIGINT, SIGTERM, SIGHUP}) sigaddset(&blocked, sig);
    ::sigprocmask(SIG_BLOCK, &blocked, nullptr);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    const int sfd = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    const int tfd = ::timerfd_create(CLOCK_BOOTTIME, TFD_CLOEXEC | TFD_NONBLOCK);
    const pid_t self = ::getpid();
    const pid_t command = ::fork();
    if (command == 0) exec_command(self, path, argv, envp, mask);
    if (command < 0 || sfd < 0 || tfd < 0) {
        write_all("pgelect: cannot start the command: fork, signalfd or timerfd failed\n");
        ::kill(0, SIGKILL);
        ::_exit(126);
    }
    // A termination signal sent to the group before the command existed is
    // pending here only: hand it on.
    sigset_t term;
    sigemptyset(&term);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&term, sig);
    const struct timespec zero {};
    for (int sig; (sig = ::sigtimedwait(&term, nullptr, &zero)) > 0;) ::kill(command, sig);

    // The guard's own clock decides; nothing here waits for pgelect to be scheduled.
    arm(tfd, deadline);
    bool expired = false;
    for (;;) {
        struct pollfd fds[3] = {{kControlFd, POLLIN, 0}, {sfd, POLLIN, 0}, {tfd, POLLIN, 0}};
        if (::poll(fds, 3, -1) < 0) continue;  // EINTR
        if (fds[0].revents != 0) {
            for (;;) {
                BootTime moved = 0;
                const ssize_t n = ::recv(kControlFd, &moved, sizeof moved, MSG_DONTWAIT);
                if (n < 0 && errno == EINTR) continue;
                if (n < 0 && errno == EAGAIN) break;
                if (n <= 0) {
                    // pgelect is gone: nothing may outlive it.  This kills the guard too.
                    ::kill(0, SIGKILL);
                    ::_exit(128 + SIGKILL);
                }
                if (n == static_cast<ssize_t>(sizeof moved) && !expired) arm(tfd, moved);
            }
        }
        if ((fds[2].revents & POLLIN) != 0) {
            std::uint64_t ticks;
            if (::read(tfd, &ticks, sizeof ticks) == static_cast<ssize_t>(sizeof ticks)) {
                if (expired) {
                    // The grace period is over: the whole group, the guard included.
                    ::kill(0, SIGKILL);
                    ::_exit(128 + SIGKILL);
                }
                // Signal first; pgelect learns of it when it runs again.
                expired = true;
                ::kill(0, SIGTERM);  // blocked in the guard itself
                struct timespec now {};
                ::clock_gettime(CLOCK_BOOTTIME, &now);
                arm(tfd, BootTime{now.tv_sec} * 1000000000 + now.tv_nsec + grace_ns);
                (void)::send(kControlFd, &kDeadlinePassed, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
            }
        }
        if ((fds[1].revents & (POLLERR | POLLNVAL)) != 0) {
            ::kill(0, SIGKILL);
            ::_exit(128 + SIGKILL);
        }
        struct signalfd_siginfo info;
        while (::read(sfd, &info, sizeof info) > 0) {
        }
        int status = 0;
        if (::waitpid(command, &status, WNOHANG) == command) exit_like(status);
    }
}

std::vector<char*> c_strings(const std::vector<std::string>& v) {
    std::vector<char*> out;
    out.reserve(v.size() + 1);
    for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
    out.push_back(nullptr);
    return out;
}

}  // namespace

BootTime boot_now() {
    struct timespec now {};
    ::clock_gettime(CLOCK_BOOTTIME, &now);
    return BootTime{now.tv_sec} * 1000000000 + now.tv_nsec;
}

std::optional<std::string> find_executable(const std::string& name) {
    if (name.empty()) return std::nullopt;
    if (name.find('/') != std::string::npos) {
        return ::access(name.c_str(), X_OK) == 0 ? std::optional<std::string>(name) : std::nullopt;
    }
    const char* env = std::getenv("PATH");
    const std::string path = env != nullptr ? env : "/usr/local/bin:/usr/bin:/bin";
    std::size_t start = 0;
    for (;;) {
        const std::size_t end = path.find(':', start);
        std::string dir =
            path.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (dir.empty()) dir = ".";
        const std::string candidate = dir + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
        if (end == std::string::npos) return std::nullopt;
        start = end + 1;
    }
}

Supervised::Supervised(const CommandSpec& spec, BootTime deadline, std::int64_t grace_ns) {
    // Everything the children need is built before fork.
    std::vector<char*> argv = c_strings(spec.argv);
    std::vector<char*> envp = c_strings(spec.env);
    int control[2];  // [0] pgelect's end, [1] the guard's
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, control) != 0)
        throw std::system_error(errno, std::generic_category(), "socketpair");
    const pid_t pid = ::fork();
    if (pid < 0) {
        const int err = errno;
        ::close(control[0]);
        ::close(control[1]);
        throw std::system_error(err, std::generic_category(), "fork");
    }
    if (pid == 0) {
        ::setpgid(0, 0);
        guard_main(control[1], control[0], spec.path.c_str(), argv.data(), envp.data(),
                   spec.signal_mask, deadline, grace_ns);
    }
    // Also here, so that no signal to the group can precede the group.
    ::setpgid(pid, pid);
    ::close(control[1]);
    guard_ = pid;
    control_fd_ = control[0];
}

Supervised::~Supervised() {
    if (!reaped_) {
        signal_group(SIGKILL);
        int status = 0;
        while (::waitpid(guard_, &status, 0) < 0 && errno == EINTR) {
        }
    }
    ::close(control_fd_);
}

void Supervised::signal_group(int sig) const {
    if (!reaped_) ::kill(-guard_, sig);
}

bool Supervised::set_deadline(BootTime deadline) const {
    return ::send(control_fd_, &deadline, sizeof deadline, MSG_DONTWAIT | MSG_NOSIGNAL) ==
           static_cast<ssize_t>(sizeof deadline);
}

bool Supervised::deadline_passed() {
    char c;
    ssize_t n;
    while ((n = ::recv(control_fd_, &c, 1, MSG_DONTWAIT)) == 1) {
        if (c == kDeadlinePassed) deadline_passed_ = true;
    }
    if (n == 0) guard_closed_ = true;
    return deadline_passed_;
}

std::optional<int> Supervised::try_reap() {
    if (reaped_) return std::nullopt;
    // Peek first (WNOWAIT): while the guard is an unreaped zombie its pid, and
    // so the group id, cannot be reused, and leftovers can be killed safely.
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(guard_), &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
        info.si_pid != guard_) {
        return std::nullopt;
    }
    ::kill(-guard_, SIGKILL);
    int status = 0;
    while (::waitpid(guard_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    return status;
}

int exit_code_of(int wait_status) {
    if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
    if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
    return 1;
}

std::string describe(int wait_status) {
    if (WIFEXITED(wait_status))
        return "exited with status " + std::to_string(WEXITSTATUS(wait_status));
    if (WIFSIGNALED(wait_status)) {
        const int sig = WTERMSIG(wait_status);
        const char* name = sigdescr_np(sig);
        return "killed by signal " + std::to_string(sig) +
               (name ? std::string(" (") + name + ")" : "");
    }
    return "ended with wait status " + std::to_string(wait_status);
}

}  // namespace pgelect::cli
