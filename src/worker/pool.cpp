#include "worker/pool.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <fstream>

#include "platform/proc.hpp"
#include "platform/signals.hpp"
#include "util/error.hpp"
#include "worker/pool_child.hpp"

namespace ccmulti::worker {

PoolProcess& Pool::spawn(int index) {
    Pipe requests = make_pipe();
    Pipe replies = make_pipe();
    std::string title = "ccmulti: pool " + node_name_ + " #" + std::to_string(index);
    pid_t pid;
    {
        BlockAllSignals blocked;  // no handler may run in the child before it has set its own dispositions
        pid = ::fork();
        if (pid == 0) run_pool_child(registry_, title, requests.read.get(), replies.write.get());
    }
    if (pid < 0) throw SystemError("fork a pool process", errno);
    auto process = std::make_unique<PoolProcess>();
    process->index = index;
    process->pid = pid;
    process->requests = std::move(requests.write);
    process->replies = std::move(replies.read);
    ::fcntl(process->replies.get(), F_SETFL, ::fcntl(process->replies.get(), F_GETFL) | O_NONBLOCK);
    ::fcntl(process->requests.get(), F_SETFL, ::fcntl(process->requests.get(), F_GETFL) | O_NONBLOCK);
    auto& slot = processes_[pid];
    slot = std::move(process);
    return *slot;
}

PoolProcess* Pool::idle() {
    for (auto& [pid, process] : processes_)
        if (process->tasks.empty() && !process->retiring) return process.get();
    return nullptr;
}

PoolProcess* Pool::find(pid_t pid) {
    auto it = processes_.find(pid);
    return it == processes_.end() ? nullptr : it->second.get();
}

void Pool::retire(PoolProcess& process) {
    process.retiring = true;
    process.requests.reset();
}

void Pool::kill(pid_t pid) {
    // Its children now, before it dies: once it is gone they are reparented and no longer tell whose they were.
    // A pool process is single-threaded, so its main thread's list is all of them.
    std::ifstream children("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    pid_t child = 0;
    while (children >> child) {
        auto stat = read_proc_stat(child);
        if (stat && stat->pgrp == child && stat->ppid == pid) ::kill(-child, SIGKILL);
    }
    ::kill(pid, SIGKILL);
}

std::unique_ptr<PoolProcess> Pool::remove(pid_t pid) {
    auto it = processes_.find(pid);
    if (it == processes_.end()) return nullptr;
    auto process = std::move(it->second);
    processes_.erase(it);
    return process;
}

}  // namespace ccmulti::worker
