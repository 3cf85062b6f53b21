// reopen: after a log rotation (etc/logrotate.d/ccmulti), every ccmulti master of this user (root: of every user)
// gets SIGUSR1: it reopens master.log and has each node shim reopen its node's log. Masters are found in the
// process table by their titles, as `ps` finds them, so it works for every run dir at once and needs no pid file;
// each is pinned with a pidfd and its start time re-checked before the signal, so a recycled pid is never hit.
#include <unistd.h>

#include <csignal>
#include <iostream>
#include <memory>
#include <set>

#include "cli/context.hpp"
#include "cli/output.hpp"
#include "platform/pidfd.hpp"
#include "platform/proc.hpp"
#include "platform/proc_table.hpp"
#include "supervisor/node_spec.hpp"

namespace ccmulti::cli {

namespace {

void reopen_command(bool quiet) {
    const uid_t me = ::getuid();
    const std::string prefix = supervisor::master_title_prefix;
    auto is_master = [&](const ProcEntry& proc) {
        return proc.title == prefix || proc.title.starts_with(prefix + " ");
    };
    const auto table = scan_processes();
    std::set<pid_t> masters;
    for (const auto& proc : table)
        if (is_master(proc)) masters.insert(proc.pid);
    int signalled = 0;
    for (const auto& proc : table) {
        if (!is_master(proc) || (me != 0 && proc.uid != me)) continue;
        // A master's child between fork and exec (a node shim being started) still carries its title; a master's
        // parent is never a master.
        if (masters.count(proc.ppid)) continue;
        auto handle = ProcessHandle::open(proc.pid);
        if (!handle) continue;  // gone meanwhile
        auto stat = read_proc_stat(proc.pid);
        if (!stat || stat->start_time != proc.start_time) continue;  // not the process we saw
        if (!handle->send_signal(SIGUSR1)) continue;
        ++signalled;
        if (!quiet) std::cout << "pid " << proc.pid << "  " << proc.title << "  reopening logs" << std::endl;
    }
    if (signalled == 0 && !quiet) std::cout << "no ccmulti master is running" << std::endl;
}

}  // namespace

void add_reopen_command(CLI::App& app, Context&) {
    auto* reopen = app.add_subcommand("reopen",
                                      "Make every ccmulti master of this user (root: all) reopen its log and its "
                                      "nodes' logs (SIGUSR1), after a log rotation");
    auto quiet = std::make_shared<bool>(false);
    reopen->add_flag("--quiet", *quiet, "Print nothing (for logrotate's postrotate)");
    reopen->callback([quiet] { reopen_command(*quiet); });
}

}  // namespace ccmulti::cli
