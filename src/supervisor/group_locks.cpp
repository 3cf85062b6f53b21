#include "supervisor/group_locks.hpp"

#include <chrono>
#include <optional>
#include <set>
#include <thread>

#include "platform/proc_table.hpp"
#include "util/error.hpp"

namespace ccmulti::supervisor {

std::filesystem::path master_pidfile(const std::filesystem::path& run_dir) {
    return run_dir / "master.pid";
}
std::filesystem::path control_socket(const std::filesystem::path& run_dir) {
    return run_dir / "master.sock";
}
std::filesystem::path notify_socket(const std::filesystem::path& run_dir) {
    return run_dir / "notify.sock";
}

PidCheck check_master(const std::filesystem::path& run_dir) {
    return check_pidfile(master_pidfile(run_dir), master_title_prefix);
}

std::vector<std::filesystem::path> running_master_dirs(const std::filesystem::path& except) {
    std::vector<std::filesystem::path> dirs;
    for (const auto& proc : scan_processes()) {
        if (!proc.title.starts_with(master_title_prefix)) continue;
        std::error_code ec;
        for (const auto& fd : std::filesystem::directory_iterator("/proc/" + std::to_string(proc.pid) + "/fd", ec)) {
            auto target = std::filesystem::read_symlink(fd.path(), ec);
            if (!ec && target.filename() == "master.pid") {
                if (target.parent_path() != except) dirs.push_back(target.parent_path());
                break;
            }
        }
    }
    return dirs;
}

namespace {

// A lock is also held for an instant by anyone running check_pidfile (a shared lock to test it). Only a
// lock that stays held, or that names a live owner, means "in use": retry briefly otherwise.
std::optional<PidFile> acquire(const std::filesystem::path& path, const std::string& title_prefix, PidCheck& holder) {
    for (int attempt = 0; attempt < 20; ++attempt) {
        if (auto lock = PidFile::try_acquire(path)) return lock;
        holder = check_pidfile(path, title_prefix);
        if (holder.running()) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return std::nullopt;
}

}  // namespace

std::optional<GroupLocks> try_acquire_group_locks(const std::filesystem::path& run_dir,
                                                  const std::vector<NodeSpec>& nodes) {
    std::set<std::filesystem::path> seen;
    for (const auto& node : nodes)
        if (!seen.insert(node.pidfile).second)
            throw UsageError("two nodes share the pid file " + node.pidfile.string() + "; put %n in --pidfile");

    PidCheck master_holder;
    auto master = acquire(master_pidfile(run_dir), master_title_prefix, master_holder);
    if (!master) return std::nullopt;  // a master runs there, or another `start` is bringing one up
    GroupLocks locks{std::move(*master), {}};
    try {
        for (const auto& node : nodes) {
            PidCheck holder;
            auto lock = acquire(node.pidfile, node_title_prefix(node.name), holder);
            if (holder.running()) throw Error(node.name + " already running (pid " + std::to_string(holder.pid) + ")");
            if (!lock)
                throw Error("pid file " + node.pidfile.string() + " of " + node.name +
                            " is locked by another process; is another ccmulti starting it?");
            locks.nodes.push_back(std::move(*lock));
        }
    } catch (...) {
        for (auto& lock : locks.nodes) lock.remove();  // the files we created or took over, empty now
        locks.master.remove();
        throw;
    }
    return locks;
}

}  // namespace ccmulti::supervisor
