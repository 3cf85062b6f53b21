#include "supervisor/node_shim.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "platform/fd.hpp"
#include "platform/proc_title.hpp"
#include "platform/signals.hpp"
#include "platform/spawn.hpp"
#include "platform/systemd_notify.hpp"
#include "supervisor/node_log.hpp"
#include "supervisor/node_spec.hpp"
#include "util/error.hpp"
#include "util/strings.hpp"

namespace ccmulti::supervisor {

namespace {

// Tells the master how the program ended, which the shim's own exit cannot carry: "core dumped" (the shim
// never dumps core itself). Sent before we exit, so it is queued before the master sees our SIGCHLD. Without
// it the master reports the shim's status.
void report_program_exit(const std::string& name, int status) {
    std::string how;
    if (WIFEXITED(status)) {
        how = "exited with code " + std::to_string(WEXITSTATUS(status));
    } else {
        how = "killed by SIG" + signal_name(WTERMSIG(status)) + (WCOREDUMP(status) ? " (core dumped)" : "");
        // In the node's log too, where the user looks first.
        std::fprintf(stderr, "ccmulti: %s: the program was %s\n", name.c_str(), how.c_str());
    }
    platform::systemd_notify("CCMULTI_PROGRAM_EXIT=" + how);
}

[[noreturn]] void die_like(int status) {
    if (WIFEXITED(status)) std::exit(WEXITSTATUS(status));
    int sig = WTERMSIG(status);
    // End the same way, so the master sees "killed by SIGTERM" and not a made-up exit code. No core file of
    // the shim for a core-dumping signal: the program's own core (if any) is the interesting one.
    rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    ::signal(sig, SIG_DFL);
    sigset_t only = make_sigset({sig});
    ::sigprocmask(SIG_UNBLOCK, &only, nullptr);
    ::raise(sig);
    std::exit(128 + sig);
}

}  // namespace

int node_shim_main(int argc, char** argv) {
    std::vector<std::string> args(argv, argv + argc);  // copy before the title overwrites argv
    auto separator = std::find(args.begin(), args.end(), "--");
    if (args.size() < 6 || args[1] != node_shim_command || separator != args.begin() + 6 ||
        separator + 1 == args.end() || !is_digits(args[3]) || !is_digits(args[4]) || args[5].empty()) {
        std::fprintf(stderr, "ccmulti: %s is internal: ccmulti %s NAME LOCK_FD MASTER_PID LOGFILE -- PROGRAM ARGS...\n",
                     node_shim_command, node_shim_command);
        return static_cast<int>(Exit::usage);
    }
    const std::string name = args[2];
    const int lock_fd = std::stoi(args[3]);
    const pid_t master = std::stoi(args[4]);
    const std::filesystem::path log_path = args[5];
    std::vector<std::string> program(separator + 1, args.end());

    // Everything we forward or act on is taken from a signalfd below; the block is inherited by nothing
    // (spawn resets the mask in the program). SIGPIPE: writes to a log file never raise it; ignore it anyway.
    // The master started us with these blocked already (node_shim_signals); blocking again is for a shim run
    // by hand.
    sigset_t handled;
    sigemptyset(&handled);
    for (int sig : node_shim_signals()) sigaddset(&handled, sig);
    ::sigprocmask(SIG_BLOCK, &handled, nullptr);
    if (::getppid() != master) ::kill(0, SIGKILL);  // the master died before we could notice

    NodeSpec spec;
    spec.name = name;
    if (const char* queues = std::getenv("CCMULTI_QUEUES"); queues && *queues) spec.queues = split(queues, ',');
    set_proc_title(node_title(spec), "ccmulti-node");
    ::fcntl(lock_fd, F_SETFD, FD_CLOEXEC);  // the lock is ours, not the program's

    // The program writes into a pipe; we append it to the log (our fds 1 and 2, opened by the master).
    Pipe output;
    UniqueFd signals;
    try {
        output = make_pipe();
    } catch (const Error& e) {
        std::fprintf(stderr, "ccmulti: %s: %s\n", name.c_str(), e.what());
        return 127;
    }
    signals.reset(::signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!signals) {
        std::fprintf(stderr, "ccmulti: %s: signalfd: %s\n", name.c_str(), std::strerror(errno));
        return 127;
    }

    SpawnOptions options;
    options.program = program.front();
    options.args.assign(program.begin() + 1, program.end());
    for (char** e = environ; *e; ++e) options.env.emplace_back(*e);
    options.new_process_group = false;      // the program stays in our group, which the master kills
    options.parent_death_signal = SIGKILL;  // and dies with us
    options.stdout_fd = output.write.get();
    options.stderr_fd = output.write.get();
    pid_t child = -1;
    try {
        child = spawn(options);
    } catch (const Error& e) {
        std::fprintf(stderr, "ccmulti: %s: %s\n", name.c_str(), e.what());
        return 127;
    }
    output.write.reset();  // from now on the pipe ends when the program (and its children) close it

    NodeLog log(log_path, std::move(output.read),
                [](const std::string& message) { platform::systemd_notify("STATUS=log: " + message); });
    for (;;) {
        pollfd fds[2] = {{signals.get(), POLLIN, 0}, {log.fd(), POLLIN, 0}};  // fd -1 (the pipe at EOF): skipped
        const auto timeout = log.timeout();
        int ready = ::poll(fds, 2, timeout ? static_cast<int>(timeout->count()) : -1);
        if (ready < 0) continue;  // EINTR
        if (fds[1].revents) log.pump();
        log.on_timeout();
        if (!(fds[0].revents & POLLIN)) continue;
        signalfd_siginfo info{};
        while (::read(signals.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
            const int sig = static_cast<int>(info.ssi_signo);
            if (sig == SIGCHLD) {
                int status = 0;
                pid_t pid;
                while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0)
                    if (pid == child) {
                        // Nothing the program wrote before it exited may be lost: the pipe holds it still.
                        log.drain(std::chrono::milliseconds(50), std::chrono::seconds(1));
                        report_program_exit(name, status);
                        die_like(status);
                    }
                continue;
            }
            if (sig == SIGUSR1) {  // log rotation: the file was renamed; write to a new one at the same path
                log.request_reopen();
                continue;
            }
            if (sig == SIGPIPE) continue;
            if (sig == SIGHUP && static_cast<pid_t>(info.ssi_pid) != master) {
                // `kill -HUP $(cat w1.pid)` (an init script's graceful restart): the master restarts the node
                // warm, as for `ccmulti restart w1`; a program would take HUP as a hang-up and end.
                platform::systemd_notify("CCMULTI_RESTART=SIGHUP from pid " + std::to_string(info.ssi_pid));
                continue;
            }
            if (sig == master_death_signal && ::getppid() != master) {
                // The master is gone: nobody supervises this node any more. Take the whole group down.
                std::fprintf(stderr, "ccmulti: %s: master (pid %d) died; killing the node's process group\n",
                             name.c_str(), static_cast<int>(master));
                ::kill(0, SIGKILL);
            }
            ::kill(child, sig);
        }
    }
}

}  // namespace ccmulti::supervisor
