#include "supervisor/containment.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/logger.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "platform/cgroup.hpp"
#include "platform/proc.hpp"
#include "platform/proc_environ.hpp"
#include "platform/proc_table.hpp"
#include "util/error.hpp"

namespace ccmulti::supervisor {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr auto empty_wait = std::chrono::milliseconds(1000);
constexpr const char* record_name = "master.cgroup";

// FNV-1a: stable across builds and machines, unlike std::hash.
std::string hash_hex(const std::string& text) {
    std::uint64_t hash = 14695981039346656037ULL;
    for (unsigned char c : text) {
        hash ^= c;
        hash *= 1099511628211ULL;
    }
    char buffer[17];
    std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(hash));
    return buffer;
}

std::string group_cgroup_name(const std::string& key) {
    return "ccmulti-" + hash_hex(key);
}

// A node's name as a cgroup directory name: no '/', no newline, not "." or "..".
std::string cgroup_name(const std::string& node) {
    std::string name = node;
    for (char& c : name)
        if (c == '/' || c == '\n') c = '_';
    if (name.empty() || name == "." || name == "..") name = "node-" + name;
    return name;
}

// The group's cgroup as the run dir records it, when the record is ours and names this group's cgroup below the
// cgroup2 mount: nothing a planted file names elsewhere is ever killed.
std::optional<fs::path> read_record(const fs::path& run_dir, const std::string& key) {
    UniqueFd fd(::open((run_dir / record_name).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return std::nullopt;
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 022) ||
        st.st_size > 4096)
        return std::nullopt;
    char buffer[4097];
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer - 1);
    if (n <= 0) return std::nullopt;
    std::string text(buffer, static_cast<std::size_t>(n));
    while (!text.empty() && text.back() == '\n') text.pop_back();
    fs::path path(text);
    auto mount = cgroup::mount_point();
    if (!mount || !path.is_absolute() || path.lexically_normal() != path || text.find('\n') != std::string::npos ||
        path.filename() != group_cgroup_name(key))
        return std::nullopt;
    auto relative = path.lexically_relative(*mount);
    if (relative.empty() || *relative.begin() == "..") return std::nullopt;
    return path;
}

std::string environment_value(pid_t pid, const std::string& name) {
    std::string text = read_proc_file("/proc/" + std::to_string(pid) + "/environ");
    const std::string prefix = name + "=";
    std::size_t start = 0;
    while (start < text.size()) {
        auto end = text.find('\0', start);
        if (end == std::string::npos) end = text.size();
        if (text.compare(start, prefix.size(), prefix) == 0)
            return text.substr(start + prefix.size(), end - start - prefix.size());
        start = end + 1;
    }
    return {};
}

// SIGKILLs every process whose environment holds `entries` (and the process group such a process leads), a few
// rounds for what forks meanwhile. Never this process, its ancestors or its own group (`ccmulti kill` run from a
// task). Counts what was killed by node name.
std::size_t kill_marked(const std::vector<std::string>& entries, std::map<std::string, std::size_t>* by_node) {
    std::set<pid_t> spared{::getpid()};
    for (pid_t pid = ::getppid(); pid > 1 && spared.insert(pid).second;) {
        auto stat = read_proc_stat(pid);
        if (!stat) break;
        pid = stat->ppid;
    }
    const pid_t own_group = ::getpgrp();
    std::set<pid_t> killed;
    for (int round = 0; round < 10; ++round) {
        bool fresh = false;
        for (pid_t pid : processes_with_environment(entries)) {
            if (spared.count(pid) || killed.count(pid)) continue;
            fresh = true;
            if (by_node) ++(*by_node)[environment_value(pid, "CCMULTI_NODE")];
            auto stat = read_proc_stat(pid);
            ::kill(pid, SIGKILL);
            if (stat && stat->pgrp == pid && pid != own_group) ::kill(-pid, SIGKILL);
            killed.insert(pid);
        }
        if (!fresh) break;
    }
    return killed.size();
}

Leftovers end_leftovers_in(const fs::path& run_dir, const std::vector<std::string>& nodes,
                           const std::vector<fs::path>& also) {
    Leftovers out;
    const std::string key = group_key(run_dir);
    std::vector<fs::path> groups = also;
    if (auto recorded = read_record(run_dir, key)) groups.push_back(*recorded);
    std::sort(groups.begin(), groups.end());
    groups.erase(std::unique(groups.begin(), groups.end()), groups.end());
    bool all_removed = true;
    for (const auto& group : groups) {
        std::error_code ec;
        if (!fs::is_directory(group, ec)) continue;
        std::vector<fs::path> targets;
        if (nodes.empty()) {
            for (const auto& entry : fs::directory_iterator(group, ec))
                if (entry.is_directory(ec) && !entry.is_symlink(ec)) targets.push_back(entry.path());
        } else {
            for (const auto& node : nodes) {
                targets.push_back(group / cgroup_name(node));
                // and the node's other runs ("w1@host~1", a reload's replacement)
                for (const auto& entry : fs::directory_iterator(group, ec))
                    if (entry.path().filename().string().starts_with(cgroup_name(node) + "~") &&
                        entry.is_directory(ec) && !entry.is_symlink(ec))
                        targets.push_back(entry.path());
            }
        }
        for (const auto& target : targets) {
            if (!fs::is_directory(target, ec)) continue;
            const std::size_t count = cgroup::procs(target).size();
            if (count) {
                cgroup::kill_all(target);
                cgroup::wait_empty(target, empty_wait);
                out.processes += count;
                out.by_node[target.filename().string()] += count;
                out.cgroups.push_back(target.string());
            }
            cgroup::remove(target);
        }
        if (nodes.empty()) all_removed = cgroup::remove(group) && all_removed;
    }
    if (nodes.empty() && all_removed) ::unlink((run_dir / record_name).c_str());
    const std::string marker = std::string(group_env_name) + "=" + key;
    if (nodes.empty()) {
        out.processes += kill_marked({marker}, &out.by_node);
    } else {
        for (const auto& node : nodes) {
            const std::size_t count = kill_marked({marker, "CCMULTI_NODE=" + node}, nullptr);
            if (count) out.by_node[node] += count;
            out.processes += count;
        }
    }
    return out;
}

}  // namespace

std::string group_key(const fs::path& run_dir) {
    std::error_code ec;
    auto absolute = fs::absolute(run_dir, ec);
    return (ec ? run_dir : absolute).lexically_normal().string();
}

Leftovers end_leftovers(const fs::path& run_dir, const std::vector<std::string>& nodes) {
    return end_leftovers_in(run_dir, nodes, {});
}

Containment::Containment(const fs::path& run_dir, std::shared_ptr<spdlog::logger> log)
    : run_dir_(run_dir), key_(group_key(run_dir)), log_(std::move(log)) {
    fs::path group;
    const char* forced = std::getenv(containment_env_name);
    auto mount = cgroup::mount_point();
    auto own = cgroup::path_of(0);
    if (mount && own) group = (*mount / fs::path(*own).relative_path()).lexically_normal() / group_cgroup_name(key_);
    // First what a previous master of this group left (it was SIGKILLed): also in the cgroup we would use now.
    auto left = end_leftovers_in(run_dir_, {}, group.empty() ? std::vector<fs::path>{} : std::vector<fs::path>{group});
    if (left.processes) {
        std::vector<std::string> parts;
        for (const auto& [node, count] : left.by_node)
            parts.push_back((node.empty() ? std::string("?") : node) + ": " + std::to_string(count));
        std::string text;
        for (const auto& part : parts) text += (text.empty() ? "" : ", ") + part;
        log_->warn("killed {} process(es) left behind by a previous master of this group ({})", left.processes, text);
    }

    if (forced && std::strcmp(forced, "subreaper") == 0) {
        reason_ = std::string(containment_env_name) + "=subreaper";
    } else if (!mount) {
        reason_ = "no cgroup v2 is mounted";
    } else if (!own) {
        reason_ = "this process is in no cgroup v2 (/proc/self/cgroup)";
    } else if (auto why = cgroup::why_not_usable(group.parent_path()); !why.empty()) {
        reason_ = why;
    } else {
        try {
            cgroup::make(group);
            memory_controller_ = cgroup::enable_for_children(group, "memory");
            group_ = group;
        } catch (const Error& e) {
            reason_ = e.what();
        }
    }
    if (group_.empty()) {
        log_->info("containment: subreaper ({}): what a node's processes start is found by {} in /proc", reason_,
                   group_env_name);
        return;
    }
    // The record lets `ccmulti kill` and the next `start` find the group's cgroup should this master be SIGKILLed.
    const fs::path record = run_dir_ / record_name;
    const std::string text = group_.string() + "\n";
    UniqueFd fd(::open(record.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!fd || !write_all(fd.get(), text.data(), text.size()))
        log_->warn("containment: cannot write {}: {} (a SIGKILLed master's leftovers are then found by {} only)",
                   record.string(), std::strerror(errno), group_env_name);
    log_->info("containment: cgroup {} (memory: {})", group_.string(),
               memory_controller_ ? "memory.current" : "RSS of cgroup.procs, the memory controller is not offered");
}

json Containment::describe() const {
    if (group_.empty()) return {{"mode", "subreaper"}, {"reason", reason_}, {"memory", "rss of process group"}};
    return {{"mode", "cgroup"},
            {"path", group_},
            {"memory", memory_controller_ ? "memory.current" : "rss of cgroup.procs"}};
}

std::vector<std::string> Containment::environment(const std::string& unit) const {
    return {std::string(group_env_name) + "=" + key_, std::string(unit_env_name) + "=" + unit};
}

fs::path Containment::node_dir(const std::string& node) const {
    return group_ / cgroup_name(node);
}

UniqueFd Containment::prepare(const std::string& node) {
    if (group_.empty()) return {};
    try {
        cgroup::make(node_dir(node));
        auto fd = cgroup::open_procs(node_dir(node));
        not_joined_.erase(node);
        return fd;
    } catch (const Error& e) {
        log_->warn("{}: no cgroup of its own ({}); contained as a process group and by {}", node, e.what(),
                   group_env_name);
        not_joined_.insert(node);
        return {};
    }
}

void Containment::started(const std::string& node, pid_t shim) {
    if (group_.empty() || not_joined_.count(node)) return;
    auto path = cgroup::path_of(shim);
    if (!path) return;  // it has exited already (a program that fails at once): end() cleans up
    auto mount = cgroup::mount_point();
    if (path && mount && (*mount / fs::path(*path).relative_path()).lexically_normal() == node_dir(node)) return;
    log_->warn("{}: its shim (pid {}) did not join {} (it is in {}); contained as a process group and by {}", node,
               shim, node_dir(node).string(), path ? *path : std::string("no cgroup"), group_env_name);
    not_joined_.insert(node);
}

void Containment::end(const std::string& node, pid_t shim) {
    (void)shim;  // a zombie now, in no cgroup's process list
    if (group_.empty() || not_joined_.count(node)) return end_by_marker(node);
    const fs::path dir = node_dir(node);
    if (cgroup::populated(dir)) {
        const std::size_t count = cgroup::procs(dir).size();
        cgroup::kill_all(dir);
        log_->info("{}: killed {} process(es) left in its cgroup", node, count);
        if (!cgroup::wait_empty(dir, empty_wait))
            log_->warn("{}: its cgroup {} still has processes {}ms after cgroup.kill (stuck in the kernel?)", node,
                       dir.string(), empty_wait.count());
    }
    if (!cgroup::remove(dir))
        log_->warn("{}: cannot remove its cgroup {} yet: {}", node, dir.string(), std::strerror(errno));
}

void Containment::end_by_marker(const std::string& node) {
    const std::size_t count =
        kill_marked({std::string(group_env_name) + "=" + key_, std::string(unit_env_name) + "=" + node}, nullptr);
    if (count)
        log_->info("{}: killed {} process(es) that had left its process group (found by {} in /proc)", node, count,
                   group_env_name);
}

json Containment::node_info(const std::string& node, bool running, std::uint64_t group_rss) const {
    if (group_.empty() || not_joined_.count(node))
        return {{"containment", "subreaper"},
                {"memory", running ? group_rss : 0},
                {"memory_source", "rss of process group"}};
    const fs::path dir = node_dir(node);
    std::uint64_t rss = 0;
    if (running)
        for (pid_t pid : cgroup::procs(dir)) rss += read_rss(pid).value_or(0);
    auto current = running ? cgroup::memory_current(dir) : std::nullopt;
    return {{"containment", "cgroup"},
            {"cgroup", dir},
            {"rss", rss},
            {"memory", current ? *current : rss},
            {"memory_source", current ? "memory.current" : "rss of cgroup.procs"}};
}

void Containment::finish() {
    if (group_.empty()) return;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(group_, ec)) {
        if (!entry.is_directory(ec) || entry.is_symlink(ec)) continue;
        if (cgroup::populated(entry.path())) {
            cgroup::kill_all(entry.path());
            cgroup::wait_empty(entry.path(), empty_wait);
        }
    }
    if (cgroup::remove(group_))
        ::unlink((run_dir_ / record_name).c_str());
    else
        log_->warn("containment: cannot remove {}: {}", group_.string(), std::strerror(errno));
}

}  // namespace ccmulti::supervisor
