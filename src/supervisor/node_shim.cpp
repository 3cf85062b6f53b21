#include "supervisor/node_shim.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "platform/proc_title.hpp"
#include "platform/signals.hpp"
#include "platform/spawn.hpp"
#include "supervisor/node_spec.hpp"
#include "util/error.hpp"
#include "util/strings.hpp"

namespace ccmulti::supervisor {

namespace {

// One datagram to the master on NOTIFY_SOCKET (sd_notify's format). Best effort.
void notify_master(const std::string& message) {
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (!path || !*path || std::strlen(path) >= sizeof(sockaddr_un::sun_path)) return;
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path, std::strlen(path));
    ::sendto(fd, message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&address),
             sizeof address);
    ::close(fd);
}

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
    notify_master("CCMULTI_PROGRAM_EXIT=" + how);
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
    if (args.size() < 5 || args[1] != node_shim_command || separator != args.begin() + 5 ||
        separator + 1 == args.end() || !is_digits(args[3]) || !is_digits(args[4])) {
        std::fprintf(stderr, "ccmulti: %s is internal: ccmulti %s NAME LOCK_FD MASTER_PID -- PROGRAM ARGS...\n",
                     node_shim_command, node_shim_command);
        return static_cast<int>(Exit::usage);
    }
    const std::string name = args[2];
    const int lock_fd = std::stoi(args[3]);
    const pid_t master = std::stoi(args[4]);
    std::vector<std::string> program(separator + 1, args.end());

    // Everything we forward or act on is taken synchronously below; the block is inherited by nothing
    // (spawn resets the mask in the program).
    sigset_t handled = make_sigset({SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH});
    ::sigprocmask(SIG_BLOCK, &handled, nullptr);
    if (::getppid() != master) ::kill(0, SIGKILL);  // the master died before we could notice

    NodeSpec spec;
    spec.name = name;
    if (const char* queues = std::getenv("CCMULTI_QUEUES"); queues && *queues) spec.queues = split(queues, ',');
    set_proc_title(node_title(spec), "ccmulti-node");
    ::fcntl(lock_fd, F_SETFD, FD_CLOEXEC);  // the lock is ours, not the program's

    SpawnOptions options;
    options.program = program.front();
    options.args.assign(program.begin() + 1, program.end());
    for (char** e = environ; *e; ++e) options.env.emplace_back(*e);
    options.new_process_group = false;      // the program stays in our group, which the master kills
    options.parent_death_signal = SIGKILL;  // and dies with us
    pid_t child = -1;
    try {
        child = spawn(options);
    } catch (const Error& e) {
        std::fprintf(stderr, "ccmulti: %s: %s\n", name.c_str(), e.what());
        return 127;
    }

    for (;;) {
        siginfo_t info{};
        int sig = ::sigwaitinfo(&handled, &info);
        if (sig < 0) continue;  // EINTR
        if (sig == SIGCHLD) {
            int status = 0;
            pid_t pid;
            while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0)
                if (pid == child) {
                    report_program_exit(name, status);
                    die_like(status);
                }
            continue;
        }
        if (sig == SIGHUP && static_cast<pid_t>(info.si_pid) != master) {
            // `kill -HUP $(cat w1.pid)` (an init script's graceful restart): the master restarts the node warm,
            // as for `ccmulti restart w1`; a program would take HUP as a hang-up and end.
            notify_master("CCMULTI_RESTART=SIGHUP from pid " + std::to_string(info.si_pid));
            continue;
        }
        if (sig == master_death_signal && ::getppid() != master) {
            // The master is gone: nobody supervises this node any more. Take the whole group down.
            std::fprintf(stderr, "ccmulti: %s: master (pid %d) died; killing the node's process group\n", name.c_str(),
                         static_cast<int>(master));
            ::kill(0, SIGKILL);
        }
        ::kill(child, sig);
    }
}

}  // namespace ccmulti::supervisor
