// cgroup v2, as far as a supervisor needs it to contain what its nodes start: a process group or a session is
// something a program can leave (setsid, a double fork), a cgroup is not (moving out needs write access to
// another cgroup's cgroup.procs). Found where the machine has it: the cgroup2 mount from /proc/self/mountinfo
// (/sys/fs/cgroup on a unified systemd machine, /sys/fs/cgroup/unified in a hybrid layout), this process's own
// cgroup from /proc/self/cgroup ("0::/PATH"). Under systemd a process may create cgroups only below its own when
// its unit delegates the subtree (Delegate=yes, marked by the trusted.delegate / user.delegate xattr); elsewhere
// (no systemd) when the directory is writable. Every function here is a thin, checked syscall wrapper; the policy
// (which cgroup a node gets, when it ends) is supervisor/containment.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "platform/fd.hpp"

namespace ccmulti::cgroup {

// The cgroup2 mount point; nullopt when cgroup v2 is not mounted. parse_mountinfo is separate for tests.
std::optional<std::filesystem::path> mount_point();
std::optional<std::filesystem::path> parse_mountinfo(const std::string& text);

// The cgroup v2 path of a process ("/system.slice/ccmulti.service"; "/" for the root); nullopt without one.
std::optional<std::string> path_of(pid_t pid);  // 0: this process
std::optional<std::string> parse_proc_cgroup(const std::string& text);

// Whether this process may create cgroups below `dir`: "" when it may, else why not (one phrase, for status
// and the master's log).
std::string why_not_usable(const std::filesystem::path& dir);

// Creates `dir` (an existing one is fine). Throws SystemError.
void make(const std::filesystem::path& dir);

// cgroup.procs of `dir`, opened for writing (O_CLOEXEC): a child writes "0" into it between fork and exec to
// join the cgroup before it runs anything (async-signal-safe: one write(2)). Throws SystemError.
UniqueFd open_procs(const std::filesystem::path& dir);

// The pids in `dir` and every cgroup below it.
std::vector<pid_t> procs(const std::filesystem::path& dir);

// Whether any process is in `dir` or below it (cgroup.events "populated 1"); false when `dir` is gone.
bool populated(const std::filesystem::path& dir);

// SIGKILL to every process in `dir` and below, through cgroup.kill (Linux 5.14), which also catches processes
// forked meanwhile; on older kernels every pid of cgroup.procs, a few rounds. Does not wait.
void kill_all(const std::filesystem::path& dir);

// Waits until `dir` is empty (poll on cgroup.events), at most `timeout`. True when it is (or is gone).
bool wait_empty(const std::filesystem::path& dir, std::chrono::milliseconds timeout);

// Removes `dir` and the cgroups below it (depth first). False when one is still populated (EBUSY); a missing
// `dir` counts as removed.
bool remove(const std::filesystem::path& dir);

// memory.current of `dir`; nullopt when the memory controller does not reach it.
std::optional<std::uint64_t> memory_current(const std::filesystem::path& dir);

// Enables `controller` for the children of `dir` (+memory into cgroup.subtree_control) when `dir` offers it.
// False when it is not offered or the kernel refuses (processes in `dir`: the no-internal-process rule).
bool enable_for_children(const std::filesystem::path& dir, const std::string& controller);

}  // namespace ccmulti::cgroup
