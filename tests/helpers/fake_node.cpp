// A stand-in worker for the supervisor's integration tests. It records what happens to it in a file (one
// line per event: "start PID", "signal TERM", "task started", "task done", "task interrupted", "exit 0"), and
// behaves like a Celery worker where the tests need it:
//   TERM / INT  warm shutdown: a running task is finished first, then exit 0
//   QUIT        cold shutdown: a running task is interrupted at once, then exit 0
// Options:
//   --record FILE        where events go (appended)
//   --ignore SIG,SIG     record these signals and otherwise ignore them (TERM, QUIT, INT)
//   --task SECS          start a task of SECS seconds right away
//   --notify[=SECS]      send READY=1 to $NOTIFY_SOCKET (after SECS, default 0)
//   --exit CODE          print --message (default "fake_node: exiting with CODE") to stderr and exit at once
//   --message TEXT
//   --grandchild         fork a child that sleeps for ever (records "grandchild PID")
//   --crash-after SECS   record "crash" and die SECS after starting: exit 3 (prints --message), or by
//                        --crash-signal SIG (e.g. SEGV, with core dumps allowed by its own rlimit)
// Only signals and timeouts wake it (sigtimedwait): no polling.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>
#include <string>

namespace {

using Clock = std::chrono::steady_clock;

std::string record_path;

void record(const std::string& line) {
    std::printf("fake_node[%d]: %s\n", static_cast<int>(getpid()), line.c_str());
    std::fflush(stdout);
    if (record_path.empty()) return;
    int fd = open(record_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return;
    std::string text = line + "\n";
    if (write(fd, text.data(), text.size()) < 0) std::perror("write");
    close(fd);
}

std::string name_of(int sig) {
    const char* abbrev = sigabbrev_np(sig);
    return abbrev ? abbrev : std::to_string(sig);
}

int number_of(const std::string& name) {
    for (int sig = 1; sig < NSIG; ++sig)
        if (const char* abbrev = sigabbrev_np(sig); abbrev && name == abbrev) return sig;
    std::fprintf(stderr, "fake_node: unknown signal %s\n", name.c_str());
    std::exit(2);
}

void notify_ready() {
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (!path || !*path) {
        record("no NOTIFY_SOCKET");
        return;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path, sizeof address.sun_path - 1);
    const char message[] = "READY=1\nSTATUS=fake node ready";
    const bool sent =
        sendto(fd, message, sizeof message - 1, 0, reinterpret_cast<sockaddr*>(&address), sizeof address) >= 0;
    const int error = errno;
    // Closed before anything else: `start` returns once READY=1 arrives, and a test may list our fds then.
    close(fd);
    record(sent ? std::string("notified READY=1") : std::string("notify failed: ") + std::strerror(error));
}

}  // namespace

int main(int argc, char** argv) {
    std::set<int> ignored;
    std::optional<double> task_secs, notify_after;
    std::optional<int> exit_code;
    std::string message;
    bool grandchild = false;
    std::optional<double> crash_after;
    int crash_signal = 0;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "fake_node: %s needs a value\n", arg.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (arg == "--record") {
            record_path = value();
        } else if (arg == "--ignore") {
            std::string list = value();
            std::size_t start = 0;
            while (start <= list.size()) {
                auto end = list.find(',', start);
                if (end == std::string::npos) end = list.size();
                ignored.insert(number_of(list.substr(start, end - start)));
                start = end + 1;
            }
        } else if (arg == "--task") {
            task_secs = std::stod(value());
        } else if (arg == "--notify") {
            notify_after = 0;
        } else if (arg.starts_with("--notify=")) {
            notify_after = std::stod(arg.substr(9));
        } else if (arg == "--exit") {
            exit_code = std::stoi(value());
        } else if (arg == "--message") {
            message = value();
        } else if (arg == "--crash-after") {
            crash_after = std::stod(value());
        } else if (arg == "--crash-signal") {
            crash_signal = number_of(value());
        } else if (arg == "--grandchild") {
            grandchild = true;
        } else {
            std::fprintf(stderr, "fake_node: unknown option %s\n", arg.c_str());
            return 2;
        }
    }

    if (exit_code) {
        std::fprintf(
            stderr, "%s\n",
            message.empty() ? ("fake_node: exiting with " + std::to_string(*exit_code)).c_str() : message.c_str());
        return *exit_code;
    }

    sigset_t waited;
    sigemptyset(&waited);
    for (int sig : {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2}) sigaddset(&waited, sig);
    sigprocmask(SIG_BLOCK, &waited, nullptr);
    record("start " + std::to_string(getpid()) + " node " +
           (std::getenv("CCMULTI_NODE") ? std::getenv("CCMULTI_NODE") : "?") + " queues " +
           (std::getenv("CCMULTI_QUEUES") ? std::getenv("CCMULTI_QUEUES") : "?"));

    if (grandchild) {
        pid_t pid = fork();
        if (pid == 0) {
            // No parent-death signal, no signal handling: only the process group kill can end it.
            for (;;) pause();
        }
        record("grandchild " + std::to_string(pid));
    }

    const auto began = Clock::now();
    std::optional<Clock::time_point> notify_at, task_end, crash_at;
    if (crash_after)
        crash_at = began + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*crash_after));
    if (notify_after)
        notify_at = began + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*notify_after));
    if (task_secs) {
        task_end = began + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*task_secs));
        record("task started");
    }
    bool warm = false;
    for (;;) {
        auto now = Clock::now();
        if (notify_at && now >= *notify_at) {
            notify_ready();
            notify_at.reset();
        }
        if (task_end && now >= *task_end) {
            record("task done");
            task_end.reset();
        }
        if (crash_at && now >= *crash_at) {
            record("crash");
            if (crash_signal) {
                rlimit core{RLIM_INFINITY, RLIM_INFINITY};
                setrlimit(RLIMIT_CORE, &core);
                signal(crash_signal, SIG_DFL);
                sigset_t all;
                sigfillset(&all);
                sigprocmask(SIG_UNBLOCK, &all, nullptr);
                raise(crash_signal);
            }
            std::fprintf(stderr, "%s\n", message.empty() ? "fake_node: crashing with 3" : message.c_str());
            return 3;
        }
        if (warm && !task_end) {
            record("exit 0");
            return 0;
        }
        std::optional<Clock::time_point> wake;
        for (const auto& t : {notify_at, task_end, crash_at})
            if (t && (!wake || *t < *wake)) wake = t;
        siginfo_t info{};
        int sig;
        if (wake) {
            auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(*wake - Clock::now());
            if (left.count() < 0) left = std::chrono::nanoseconds(0);
            timespec timeout{static_cast<time_t>(left.count() / 1'000'000'000),
                             static_cast<long>(left.count() % 1'000'000'000)};
            sig = sigtimedwait(&waited, &info, &timeout);
        } else {
            sig = sigwaitinfo(&waited, &info);
        }
        if (sig < 0) continue;  // timeout or EINTR
        if (ignored.count(sig)) {
            record("signal " + name_of(sig) + " ignored");
            continue;
        }
        record("signal " + name_of(sig));
        if (sig == SIGTERM || sig == SIGINT) {
            warm = true;  // finish the task, then exit
        } else if (sig == SIGQUIT) {
            if (task_end) record("task interrupted");
            record("exit 0");
            return 0;
        }
    }
}
