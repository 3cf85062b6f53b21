// Starting a program in a child process, with the hygiene every ccmulti child needs: its own process group,
// a parent-death signal (re-checked against the parent pid, for the fork/prctl race), stdin from /dev/null,
// stdout/stderr onto a log, every signal disposition and the mask reset, and an exec failure reported to the
// parent as an exception ("cannot run 'x': No such file or directory") instead of a child that vanishes.
//
// Launching goes through Boost.Process (the project's chosen library) for its fork/exec executor, which
// already reports exec errors through a CLOEXEC pipe. It is configured so it can never reap behind the
// process's one reaper: the boost::process::child is detach()ed at once (its wait(), running() and
// destructor would call waitpid on the pid), and nothing else of Boost.Process that waits is used. The
// caller owns the pid from then on and must reap it with its own waitpid loop.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "platform/users.hpp"

namespace ccmulti {

struct SpawnOptions {
    std::string program;               // absolute, or a name looked up on $PATH
    std::vector<std::string> args;     // argv[1...]
    std::optional<std::string> argv0;  // default: `program` as given
    std::vector<std::string> env;      // the whole environment, "KEY=VALUE"
    std::filesystem::path cwd;         // empty: inherit
    int stdout_fd = -1;                // dup2'ed onto 1 / 2 in the child; -1 inherits
    int stderr_fd = -1;
    bool new_process_group = true;  // setpgid(0, 0): the child leads a new process group
    int parent_death_signal = 0;    // PR_SET_PDEATHSIG; 0 for none
    int pass_fd = -1;               // an fd (normally CLOEXEC) to hand over across exec at the same number
    // A cgroup's cgroup.procs open for writing (platform/cgroup.hpp): the child writes "0" into it before anything
    // else, so it and all it starts are in that cgroup from the first instruction of the program. A failed write
    // is not an error here (the caller checks /proc/PID/cgroup and falls back): -1 for none.
    int cgroup_procs_fd = -1;
    // Run as this user (root only): supplementary groups, gid, then uid are set before anything else the child
    // does (a credential change clears PR_SET_PDEATHSIG, so it comes first), and verified: a child that could
    // regain root, or still has root's groups, fails instead of running.
    std::optional<Owner> run_as;
    // Left blocked across exec (every other signal is reset and unblocked), for a program that takes them
    // synchronously and must not die of one that arrives before it is set up.
    std::vector<int> blocked_signals;
};

// Returns the child's pid. Throws Error when the program cannot be found or exec fails.
pid_t spawn(const SpawnOptions& options);

// `name` resolved like execvp would ($PATH when it has no '/'), or nullopt when not found / not executable.
std::optional<std::filesystem::path> find_program(const std::string& name);

}  // namespace ccmulti
