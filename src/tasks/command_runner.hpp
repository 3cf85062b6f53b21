// Runs an external program the way a command task needs: argv without a shell, `input` on its stdin, stdout and
// stderr captured, in its own process group (so time limits reach everything it started), with deadlines:
// at the soft deadline the group gets SIGUSR1 (Celery's billiard uses it for the soft limit; Python dies of it
// unless the task handles it), at the hard deadline SIGKILL. The command's leader also gets SIGKILL if the
// process running it dies (PR_SET_PDEATHSIG), so a pool child killed by its node leaves no command behind.
//
// The caller must not reap children behind this function's back (a SIGCHLD handler calling wait()): it waits
// for its own child by pid.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace ccmulti::tasks {

struct CommandRun {
    int wait_status = 0;   // as waitpid(2) reports it
    std::string out, err;  // captured, each capped (the rest is read and dropped)
    int exec_errno = 0;    // non-zero: the program could not be started
    bool soft_signalled = false;
    bool hard_killed = false;
};

struct CommandLimits {
    std::optional<std::chrono::steady_clock::time_point> soft_deadline, hard_deadline;
};

// Throws SystemError only when the plumbing fails (pipe, fork); a missing program is exec_errno.
CommandRun run_command(const std::vector<std::string>& argv, const std::string& input, const CommandLimits& limits,
                       const std::filesystem::path& cwd = {});

inline constexpr std::size_t command_output_limit = 16 * 1024 * 1024;

}  // namespace ccmulti::tasks
