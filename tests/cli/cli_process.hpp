// Helpers of the command-line tests: run the built pgelect binary with its
// output in files, wait for it with a deadline, and look at processes.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "test_env.hpp"

extern char** environ;

namespace pgelect::test {

inline std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// A fresh directory under $TMPDIR, removed with the object.
class TempDir {
  public:
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "pgelect-cli.XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::filesystem::path& path() const { return path_; }
    std::string operator/(const std::string& name) const { return (path_ / name).string(); }

  private:
    std::filesystem::path path_;
};

// True while `pid` exists and is not a zombie (an orphaned zombie waits for
// PID 1, which may never reap it in a container).
inline bool process_alive(pid_t pid) {
    const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    const auto paren = stat.rfind(')');
    if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
    const char state = stat[paren + 2];
    return state != 'Z' && state != 'X';
}

// One pgelect process with stdout and stderr in files.  The destructor
// SIGKILLs it if it still runs.
class Pgelect {
  public:
    // `wrapper`: runs pgelect through e.g. {"/usr/bin/nohup"}.  `stderr_fd`: pgelect's
    // stderr instead of a file (e.g. a pipe the test holds); err() is empty then.
    explicit Pgelect(const std::vector<std::string>& args, std::vector<std::string> wrapper = {},
                     int stderr_fd = -1) {
        static std::atomic<int> counter{0};
        const std::string base = (dir_ / ("p" + std::to_string(counter++)));
        out_path_ = base + ".out";
        err_path_ = base + ".err";
        std::vector<std::string> argv = std::move(wrapper);
        argv.push_back(PGELECT_CLI_BIN);
        argv.insert(argv.end(), args.begin(), args.end());
        std::vector<char*> cargv;
        for (auto& a : argv) cargv.push_back(a.data());
        cargv.push_back(nullptr);
        const pid_t parent = ::getpid();
        const pid_t pid = ::fork();
        if (pid == 0) {
            // Only async-signal-safe calls until exec: the test process has threads.
            // pgelect dies with the test (a crash, a ctest timeout), and its command with it.
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) ::_exit(127);
            const int in = ::open("/dev/null", O_RDONLY);
            const int out = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            const int err = stderr_fd >= 0
                                ? stderr_fd
                                : ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (in < 0 || out < 0 || err < 0) ::_exit(127);
            ::dup2(in, STDIN_FILENO);
            ::dup2(out, STDOUT_FILENO);
            ::dup2(err, STDERR_FILENO);
            ::close_range(3, ~0U, 0);
            // Default dispositions and no blocked signals, whatever the test runner
            // inherited (a background job of a script starts with SIGINT ignored).
            struct sigaction dfl {};
            dfl.sa_handler = SIG_DFL;
            for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD}) {
                ::sigaction(sig, &dfl, nullptr);
            }
            sigset_t none;
            sigemptyset(&none);
            ::sigprocmask(SIG_SETMASK, &none, nullptr);
            ::execve(cargv[0], cargv.data(), environ);
            ::_exit(127);
        }
        if (pid < 0) {
            ADD_FAILURE() << "fork: " << std::strerror(errno);
            return;
        }
        pid_ = pid;
    }
    ~Pgelect() {
        if (pid_ > 0 && !status_) {
            ::kill(pid_, SIGKILL);
            int st;
            ::waitpid(pid_, &st, 0);
        }
    }
    Pgelect(const Pgelect&) = delete;
    Pgelect& operator=(const Pgelect&) = delete;

    pid_t pid() const { return pid_; }
    void signal(int sig) const { ::kill(pid_, sig); }

    // The exit status (128 + N if killed by signal N) once it has exited.
    std::optional<int> exit_code() {
        if (!status_ && pid_ > 0) {
            int st = 0;
            if (::waitpid(pid_, &st, WNOHANG) == pid_) {
                status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            }
        }
        return status_;
    }
    std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
        eventually([&] { return exit_code().has_value(); }, timeout);
        return exit_code();
    }

    std::string out() const { return read_file(out_path_); }
    std::string err() const { return read_file(err_path_); }
    std::string output() const { return "--- stdout:\n" + out() + "--- stderr:\n" + err(); }

  private:
    TempDir dir_;
    std::string out_path_, err_path_;
    pid_t pid_ = -1;
    std::optional<int> status_;
};

struct Finished {
    int code;
    std::string out, err;
};

// Runs pgelect to completion (at most `timeout`).
inline Finished pgelect_cli(const std::vector<std::string>& args,
                            std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    Pgelect p(args);
    const auto code = p.wait_exit(timeout);
    EXPECT_TRUE(code.has_value()) << "pgelect did not exit within the timeout\n" << p.output();
    return {code.value_or(-1), p.out(), p.err()};
}

}  // namespace pgelect::test
