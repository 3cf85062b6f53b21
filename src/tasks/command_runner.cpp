#include "tasks/command_runner.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "platform/fd.hpp"
#include "platform/pidfd.hpp"
#include "platform/signals.hpp"
#include "util/error.hpp"

namespace ccmulti::tasks {

namespace {

void set_nonblocking(int fd) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) throw SystemError("fcntl O_NONBLOCK", errno);
}

// Reads what is available without blocking; false at EOF.
bool read_available(UniqueFd& fd, std::string& into) {
    char buffer[65536];
    while (true) {
        ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n > 0) {
            std::size_t room = command_output_limit > into.size() ? command_output_limit - into.size() : 0;
            into.append(buffer, std::min(room, static_cast<std::size_t>(n)));
            continue;
        }
        if (n == 0) {
            fd.reset();
            return false;
        }
        if (errno == EINTR) continue;
        return true;  // EAGAIN
    }
}

// In the child, between fork and exec: only async-signal-safe calls, everything prepared before the fork.
// The command sees fds 0, 1 and 2 only: whatever else the pool process holds without CLOEXEC (its request and
// reply pipes, fds 3 and 4, which dup2 left inheritable) would let a task read other tasks' requests or forge
// replies.
[[noreturn]] void exec_child(char* const* argv, const char* cwd, pid_t parent, int in, int out, int err, int report,
                             int fd_limit) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl: nobody wants our output
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction action {};
    action.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig)
        if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &action, nullptr);
    if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) {
        int error = errno;
        (void)!::write(report, &error, sizeof error);
        ::_exit(127);
    }
    if ((cwd && ::chdir(cwd) != 0) || !cloexec_from(3, fd_limit)) {
        int error = errno;
        (void)!::write(report, &error, sizeof error);
        ::_exit(127);
    }
    ::execvp(argv[0], argv);
    int error = errno;
    (void)!::write(report, &error, sizeof error);
    ::_exit(127);
}

}  // namespace

CommandRun run_command(const std::vector<std::string>& argv, const std::string& input, const CommandLimits& limits,
                       const std::filesystem::path& cwd) {
    if (argv.empty()) throw Error("a command task needs a command");
    std::vector<char*> args;
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    std::string cwd_text = cwd.string();

    Pipe in = make_pipe(), out = make_pipe(), err = make_pipe(), report = make_pipe();
    const pid_t parent = ::getpid();
    const int fd_limit = fd_ceiling();
    pid_t pid = ::fork();
    if (pid < 0) throw SystemError("fork", errno);
    if (pid == 0)
        exec_child(args.data(), cwd_text.empty() ? nullptr : cwd_text.c_str(), parent, in.read.get(), out.write.get(),
                   err.write.get(), report.write.get(), fd_limit);
    ::setpgid(pid, pid);  // also here, so a kill(-pid) right away cannot miss (EACCES after exec is fine)
    in.read.reset();
    out.write.reset();
    err.write.reset();
    report.write.reset();

    CommandRun run;
    auto process = ProcessHandle::open(pid);
    set_nonblocking(in.write.get());
    set_nonblocking(out.read.get());
    set_nonblocking(err.read.get());
    std::size_t written = 0;
    if (input.empty()) in.write.reset();
    SuppressSigpipe no_sigpipe;  // a command that does not read its stdin is EPIPE below, not our death

    // Until the leader exits. Output still held open by its descendants is not waited for.
    bool exited = !process;
    while (!exited) {
        std::vector<pollfd> fds;
        auto watch = [&fds](const UniqueFd& fd, short events) {
            if (fd) fds.push_back({fd.get(), events, 0});
        };
        watch(in.write, POLLOUT);
        watch(out.read, POLLIN);
        watch(err.read, POLLIN);
        watch(report.read, POLLIN);
        fds.push_back({process->fd(), POLLIN, 0});

        int timeout = -1;
        auto now = std::chrono::steady_clock::now();
        auto consider = [&timeout, now](std::chrono::steady_clock::time_point when) {
            auto ms = std::chrono::ceil<std::chrono::milliseconds>(when - now).count();
            ms = std::max<decltype(ms)>(ms, 0);
            if (timeout < 0 || ms < timeout) timeout = static_cast<int>(std::min<decltype(ms)>(ms, 1 << 30));
        };
        if (limits.soft_deadline && !run.soft_signalled) consider(*limits.soft_deadline);
        if (limits.hard_deadline && !run.hard_killed) consider(*limits.hard_deadline);

        if (::poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) throw SystemError("poll", errno);
        now = std::chrono::steady_clock::now();
        if (limits.hard_deadline && !run.hard_killed && now >= *limits.hard_deadline) {
            ::kill(-pid, SIGKILL);
            run.hard_killed = true;
        } else if (limits.soft_deadline && !run.soft_signalled && now >= *limits.soft_deadline) {
            ::kill(-pid, SIGUSR1);
            run.soft_signalled = true;
        }
        if (in.write) {
            while (written < input.size()) {
                ssize_t n = ::write(in.write.get(), input.data() + written, input.size() - written);
                if (n > 0) {
                    written += static_cast<std::size_t>(n);
                } else if (n < 0 && errno == EINTR) {
                    continue;
                } else {
                    if (n < 0 && errno != EAGAIN) written = input.size();  // EPIPE: it does not read stdin
                    break;
                }
            }
            if (written >= input.size()) in.write.reset();  // EOF for the command
        }
        if (out.read) read_available(out.read, run.out);
        if (err.read) read_available(err.read, run.err);
        if (report.read) {
            int error = 0;
            ssize_t n = ::read(report.read.get(), &error, sizeof error);
            if (n == sizeof error) run.exec_errno = error;
            if (n >= 0) report.read.reset();  // EOF: exec succeeded (the pipe is close-on-exec)
        }
        exited = process->exited();
    }
    // What the leader wrote before exiting is in the pipes now.
    if (out.read) read_available(out.read, run.out);
    if (err.read) read_available(err.read, run.err);
    if (run.hard_killed) ::kill(-pid, SIGKILL);  // stragglers that left the leader's exit behind
    while (::waitpid(pid, &run.wait_status, 0) < 0 && errno == EINTR) {
    }
    if (report.read) {
        int error = 0;
        if (::read(report.read.get(), &error, sizeof error) == sizeof error) run.exec_errno = error;
    }
    return run;
}

}  // namespace ccmulti::tasks
