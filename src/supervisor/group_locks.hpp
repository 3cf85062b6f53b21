// The locks that make a group of nodes ours, taken before the master starts (in the `ccmulti start` process,
// so "already running" is an error in the command the user typed, and inherited by the daemon across fork):
// master.pid in the run dir, and every node's pid file. One run dir holds one master (one group): a second `start`
// adds its nodes to it.
#pragma once

#include <filesystem>
#include <optional>
#include <vector>

#include "platform/pidfile.hpp"
#include "supervisor/node_spec.hpp"

namespace ccmulti::supervisor {

struct GroupLocks {
    PidFile master;
    std::vector<PidFile> nodes;  // in the order of the specs
};

std::filesystem::path master_pidfile(const std::filesystem::path& run_dir);  // run_dir/master.pid
std::filesystem::path control_socket(const std::filesystem::path& run_dir);  // run_dir/master.sock
std::filesystem::path notify_socket(const std::filesystem::path& run_dir);   // run_dir/notify.sock

// nullopt when master.pid is held: a master runs in `run_dir`, or another `start` is bringing one up (the caller
// then adds its nodes to that master once it listens). Throws Error (exit 1) "w1@host already running (pid
// 1234)" or naming a node's pid file that another process holds.
std::optional<GroupLocks> try_acquire_group_locks(const std::filesystem::path& run_dir,
                                                  const std::vector<NodeSpec>& nodes);

// The master running in `run_dir`, if any (master.pid locked and naming a live "ccmulti: master").
PidCheck check_master(const std::filesystem::path& run_dir);

// The directories of every running master this process may look into (its own user's, or all as root), found
// from /proc alone: a process titled "ccmulti: master" holding an open ".../master.pid". For messages that point
// a user at the group they meant.
// `except`: the directory the caller already looked in.
std::vector<std::filesystem::path> running_master_dirs(const std::filesystem::path& except);

}  // namespace ccmulti::supervisor
