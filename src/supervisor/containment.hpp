// Containment of a node: everything its program starts ends with the node. A process group is not enough: a
// command task's `setsid sleep 302 &` or a double fork leaves the node's group and session, and PR_SET_PDEATHSIG
// reaches one process only. So each node runs in a cgroup v2 of its own where the machine lets ccmulti have one
// (platform/cgroup.hpp: below the master's own cgroup, delegated under systemd, writable elsewhere):
//
//   <master's cgroup>/ccmulti-<hash of the run dir>/          the group (memory controller enabled when offered)
//                                                  w1@host/   the node: its shim joins it between fork and exec
//
// A node ends (its shim exited, by a stop, a kill or a crash) with cgroup.kill on its cgroup, which is then
// removed; the master's exit removes the group's. The group's cgroup path is recorded in the run dir
// (master.cgroup), so what a SIGKILLed master left behind is found by the next `start` or by `ccmulti kill`.
//
// Where cgroups are not usable (not root, no delegation, no cgroup2; or CCMULTI_CONTAINMENT=subreaper) the
// fallback is the master as child subreaper plus an environment marker: every process of a node inherits
// CCMULTI_GROUP=<run dir> and CCMULTI_NODE=<name>, whatever group or session it moved to, so the processes of an
// ended node (and of a dead master's nodes) are found in /proc and SIGKILLed. A process that clears its
// environment escapes the fallback, not a cgroup.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "platform/fd.hpp"

namespace spdlog {
class logger;
}

namespace ccmulti::supervisor {

inline constexpr const char* group_env_name = "CCMULTI_GROUP";
inline constexpr const char* containment_env_name = "CCMULTI_CONTAINMENT";  // "subreaper" forces the fallback
inline constexpr const char* unit_env_name = "CCMULTI_UNIT";                // one run of a node (environment())

// The value of CCMULTI_GROUP for the group of `run_dir` (the run dir, absolute and normal).
std::string group_key(const std::filesystem::path& run_dir);

// What a master that died left behind of `nodes` (every node of the group when empty): the cgroups recorded in the
// run dir, and every process carrying the group's marker. All SIGKILLed; each cgroup removed once empty.
struct Leftovers {
    std::size_t processes = 0;                   // processes killed
    std::vector<std::string> cgroups;            // cgroups ended
    std::map<std::string, std::size_t> by_node;  // node name (or "?") → processes killed
};
Leftovers end_leftovers(const std::filesystem::path& run_dir, const std::vector<std::string>& nodes);

class Containment {
public:
    // Ends what a previous master of this group left (it was SIGKILLed; logged), then chooses: a cgroup when
    // usable, else the fallback.
    Containment(const std::filesystem::path& run_dir, std::shared_ptr<spdlog::logger> log);

    bool uses_cgroups() const { return !group_.empty(); }
    // {"mode":"cgroup","path":…,"memory":"memory.current"|"rss of cgroup.procs"} or
    // {"mode":"subreaper","reason":…,"memory":"rss of process group"}
    nlohmann::json describe() const;

    // "KEY=VALUE" entries every process of the unit inherits (the markers; CCMULTI_NODE is the master's).
    // A unit is one run of a node: its name, or "name~N" for a run beside another one of the same node (a
    // reload's replacement starting while the old process serves): each run has its own cgroup and marker
    // (CCMULTI_UNIT), so ending one never touches the other. The calls below take units.
    std::vector<std::string> environment(const std::string& unit) const;

    // Before the node's shim is spawned: the node's cgroup exists, and this is its cgroup.procs for the child to
    // write "0" into (SpawnOptions::cgroup_procs_fd). An empty fd: the node is contained by the fallback.
    UniqueFd prepare(const std::string& node);
    // After the spawn: checks the shim is in its cgroup (else this node falls back, with a warning).
    void started(const std::string& node, pid_t shim);
    // The shim has exited (still unreaped): SIGKILL everything left of the node, wait briefly, remove its cgroup.
    void end(const std::string& node, pid_t shim);

    // The node's memory and where the number comes from; {"cgroup": path} for a contained node.
    nlohmann::json node_info(const std::string& node, bool running, std::uint64_t group_rss) const;

    // The master exits: every node cgroup and the group's own are removed.
    void finish();

private:
    std::filesystem::path node_dir(const std::string& node) const;
    void end_by_marker(const std::string& node);

    std::filesystem::path run_dir_;
    std::string key_;
    std::shared_ptr<spdlog::logger> log_;
    std::filesystem::path group_;  // empty: the subreaper fallback
    std::string reason_;           // why the fallback
    bool memory_controller_ = false;
    std::set<std::string> not_joined_;  // nodes whose shim did not get into its cgroup
};

}  // namespace ccmulti::supervisor
