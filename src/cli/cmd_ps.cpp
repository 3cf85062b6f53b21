// ps: every ccmulti process from the process table alone, so it works with the pid files deleted and the
// master dead. Masters and nodes are recognised by their titles ("ccmulti: master [...]", "ccmulti: node
// NAME ..."), everything else by being a descendant of one: the program a node runs, its pool ("ccmulti: pool
// NAME #i" for the native worker), a task's subprocesses. A node whose master is gone is shown on its own.
// --json gives each process its node's name and queues (from the node's title, "ccmulti: node w1@host -Q a,b";
// a process below a node has its node's), so scripts need not parse titles.
#include <unistd.h>

#include <iostream>
#include <map>

#include "cli/context.hpp"
#include "cli/output.hpp"
#include "platform/proc_table.hpp"
#include "supervisor/node_spec.hpp"
#include "util/strings.hpp"

namespace ccmulti::cli {

namespace {

using nlohmann::json;

bool title_starts(const std::string& title, const std::string& prefix) {
    return title == prefix || title.starts_with(prefix + " ");
}

std::string role_of(const std::string& title) {
    if (title_starts(title, supervisor::master_title_prefix)) return "master";
    if (title_starts(title, supervisor::any_node_title_prefix)) return "node";
    if (title_starts(title, "ccmulti: pool")) return "pool";
    return "process";
}

// What a title says of its node: "ccmulti: node w1@host -Q a,b", "ccmulti: worker w1@host", "ccmulti: pool
// w1@host #2". Queues only from the node's title, and only when it names them (-Q).
struct NodeOf {
    json name = nullptr, queues = nullptr;
};

NodeOf node_of_title(const std::string& title, const NodeOf& parent) {
    for (const char* prefix : {"ccmulti: node ", "ccmulti: worker ", "ccmulti: pool "}) {
        if (!title.starts_with(prefix)) continue;
        std::vector<std::string> words = split(title.substr(std::string_view(prefix).size()), ' ');
        if (words.empty() || words[0].empty()) break;
        NodeOf node = parent;
        if (parent.name != words[0]) node.queues = nullptr;  // a node's own, not another's
        node.name = words[0];
        if (std::string_view(prefix) == "ccmulti: node ") {
            node.queues = nullptr;
            for (std::size_t i = 1; i + 1 < words.size(); ++i)
                if (words[i] == "-Q") node.queues = split(words[i + 1], ',');
        }
        return node;
    }
    return parent;
}

struct Tree {
    std::map<pid_t, ProcEntry> by_pid;
    std::map<pid_t, std::vector<pid_t>> children;
};

json describe(const Tree& tree, pid_t pid, int depth, const NodeOf& parent = {}) {
    const ProcEntry& proc = tree.by_pid.at(pid);
    NodeOf node = node_of_title(proc.title, parent);
    json entry = {{"pid", proc.pid},       {"ppid", proc.ppid},
                  {"uid", proc.uid},       {"role", role_of(proc.title)},
                  {"title", proc.title},   {"node", node.name},
                  {"queues", node.queues}, {"uptime", process_age_seconds(proc.start_time)},
                  {"rss", proc.rss_bytes}, {"children", json::array()}};
    if (auto it = tree.children.find(pid); it != tree.children.end() && depth < 64)
        for (pid_t child : it->second) entry["children"].push_back(describe(tree, child, depth + 1, node));
    return entry;
}

void add_rows(const json& entry, const std::string& prefix, bool last, bool root,
              std::vector<std::vector<std::string>>& rows, std::vector<std::string>& roles) {
    std::string branch = root ? "" : prefix + (last ? "└─ " : "├─ ");
    rows.push_back({std::to_string(entry["pid"].get<long>()), std::to_string(entry["ppid"].get<long>()),
                    format_duration(entry["uptime"].get<double>()), format_bytes(entry["rss"].get<std::uint64_t>()),
                    branch + entry["title"].get<std::string>()});
    roles.push_back(entry["role"].get<std::string>());
    const auto& children = entry["children"];
    std::string next = root ? "" : prefix + (last ? "   " : "│  ");
    for (std::size_t i = 0; i < children.size(); ++i)
        add_rows(children[i], next, i + 1 == children.size(), false, rows, roles);
}

void ps_command(Context& context) {
    Tree tree;
    for (auto& proc : scan_processes()) {
        if (proc.pid == ::getpid()) continue;
        tree.by_pid[proc.pid] = std::move(proc);
    }
    for (const auto& [pid, proc] : tree.by_pid) tree.children[proc.ppid].push_back(pid);
    json roots = json::array();
    for (const auto& [pid, proc] : tree.by_pid) {
        const std::string role = role_of(proc.title);
        auto parent = tree.by_pid.find(proc.ppid);
        const bool under_master = parent != tree.by_pid.end() && role_of(parent->second.title) == "master";
        // Masters, and nodes left without one (their master was killed, and they not yet).
        if (role == "master" || (role == "node" && !under_master)) roots.push_back(describe(tree, pid, 0));
    }
    if (context.json) return print_json({{"processes", roots}});
    if (roots.empty()) {
        std::cout << "no ccmulti masters or nodes are running" << std::endl;
        return;
    }
    std::vector<std::vector<std::string>> rows{{"PID", "PPID", "UPTIME", "RSS", "PROCESS"}};
    std::vector<std::string> roles{""};
    for (const auto& root : roots) add_rows(root, "", true, true, rows, roles);
    print_table(rows, [&](std::size_t row, std::size_t column) {
        if (column != 4) return Color::none;
        if (roles[row] == "master") return Color::bold;
        if (roles[row] == "node") return Color::blue;
        return Color::none;
    });
}

}  // namespace

void add_ps_command(CLI::App& app, Context& context) {
    auto* ps = app.add_subcommand("ps",
                                  "Every ccmulti master, node and their processes, from the process table alone "
                                  "(works without pid files or a master)");
    ps->add_flag("--json", context.json, "Machine-readable output");
    ps->callback([&context] { ps_command(context); });
}

}  // namespace ccmulti::cli
