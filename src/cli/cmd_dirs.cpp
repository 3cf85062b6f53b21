// dirs: where ccmulti keeps its files, where each location came from, and whether it is usable.
#include <iostream>

#include "cli/context.hpp"
#include "cli/output.hpp"

namespace ccmulti::cli {

void add_dirs_command(CLI::App& app, Context& context) {
    auto* dirs = add_node_command(app, context, "dirs",
                                  "Show (and create, 0700) the run, log and state dirs; with nodes, check their "
                                  "pid and log files");
    dirs->add_flag("--json", context.json, "Machine-readable output");
    dirs->callback([&context] {
        const bool json = context.json;
        Dirs where = context.dirs();
        nlohmann::json out = {{"dirs", nlohmann::json::array()}, {"nodes", nlohmann::json::array()}};
        std::vector<std::vector<std::string>> rows{{"DIR", "PATH", "FROM", "STATE"}};
        for (const Dir* dir : {&where.run, &where.log, &where.state}) {
            bool created = ensure_private_dir(*dir);
            std::string state = created ? "created" : "ok";
            rows.push_back({dir->kind, dir->path.string(), dir->origin, state});
            out["dirs"].push_back({{"kind", dir->kind}, {"path", dir->path}, {"from", dir->origin}, {"state", state}});
        }
        std::vector<naming::Node> nodes;
        if (!context.node_args.empty()) nodes = context.nodes();
        for (const auto& node : nodes) {
            auto pid_flag = node.options.contains("-p") ? "-p" : "--pidfile";
            auto log_flag = node.options.contains("-f") ? "-f" : "--logfile";
            check_file_location(node.pidfile(), pid_flag, where.run);
            check_file_location(node.logfile(), log_flag, where.log);
            out["nodes"].push_back({{"name", node.name}, {"pidfile", node.pidfile()}, {"logfile", node.logfile()}});
        }
        if (json) return print_json(out);
        print_table(rows);
        if (nodes.empty()) return;
        std::cout << '\n';
        std::vector<std::vector<std::string>> node_rows{{"NODE", "PID FILE", "LOG FILE"}};
        for (const auto& node : nodes) node_rows.push_back({node.name, node.pidfile(), node.logfile()});
        print_table(node_rows);
    });
}

}  // namespace ccmulti::cli
