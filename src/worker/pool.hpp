// The node side of the prefork pool: forks pool processes (worker/pool_child.hpp), hands tasks over their
// request pipes, and reads outcomes from their reply pipes. A pool process runs its requests in order; the node
// gives one more than one only for tasks known to be quick (worker.cpp). Reaping is not done here: the node is the
// one reaper of its process and reports exits with remove().
#pragma once

#include <sys/types.h>

#include <deque>
#include <map>
#include <memory>
#include <string>

#include "platform/fd.hpp"
#include "tasks/registry.hpp"
#include "worker/frame.hpp"

namespace ccmulti::worker {

struct PoolProcess {
    int index = 0;  // "#2" in its title
    pid_t pid = 0;
    UniqueFd requests;  // non-blocking; the node writes task requests here as far as the pipe takes them
    UniqueFd replies;   // non-blocking; the node watches it
    FrameReader reader;
    std::deque<std::string> tasks;  // delivery tags of the tasks handed to it, in order: the first one runs
    // Request frames not fully written yet. A write takes what the pipe has room for and the rest waits for
    // EPOLLOUT: a blocking write of a request larger than the pipe's free space would wait for the process to
    // read, while it may itself wait for the node to read its reply (a deadlock).
    std::string outbox;
    std::size_t outbox_sent = 0;         // bytes of `outbox` already written
    std::deque<std::size_t> frame_ends;  // the end offset in `outbox` of each frame not fully written yet
    std::size_t unsent = 0;              // how many of `tasks` (the last ones) are not fully written yet
    bool awaiting_writable = false;      // `requests` is watched for EPOLLOUT
    std::size_t tasks_done = 0;
    bool retiring = false;  // its request pipe is closed: it exits once idle
};

class Pool {
public:
    Pool(const tasks::Registry& registry, std::string node_name)
        : registry_(registry), node_name_(std::move(node_name)) {}

    // Forks pool process `index`. Call from the node's single thread only (fork copies just the caller).
    PoolProcess& spawn(int index);

    PoolProcess* idle();  // a process without a task that is not retiring; nullptr when all are busy
    // The process with the fewest tasks (fewer than `limit`) among those `accepts`; nullptr when none.
    template <typename Accepts>
    PoolProcess* least_loaded(std::size_t limit, Accepts accepts) {
        PoolProcess* best = nullptr;
        for (auto& [pid, process] : processes_)
            if (!process->retiring && process->tasks.size() < limit &&
                (!best || process->tasks.size() < best->tasks.size()) && accepts(*process))
                best = process.get();
        return best;
    }
    PoolProcess* find(pid_t pid);
    // Closes its request pipe: it finishes its task, sees end of file and exits.
    void retire(PoolProcess& process);
    // SIGKILL to the process, and first to the process group of each command it runs (a command task runs in
    // its own group, which PR_SET_PDEATHSIG only partly covers: it kills the command, not what it started).
    // Reaping stays with the node.
    static void kill(pid_t pid);
    // Forgets a reaped process, handing it back for what it was doing.
    std::unique_ptr<PoolProcess> remove(pid_t pid);

    std::size_t size() const { return processes_.size(); }
    const std::map<pid_t, std::unique_ptr<PoolProcess>>& processes() const { return processes_; }

private:
    const tasks::Registry& registry_;
    std::string node_name_;
    std::map<pid_t, std::unique_ptr<PoolProcess>> processes_;
};

}  // namespace ccmulti::worker
