// dirs: where ccmulti keeps its files, where each location came from, and whether it is usable. With nodes, the
// directories of their pid and log files are checked, or created with --create (once, as root, for a service
// user: `ccmulti dirs --create --owner celery w1 --pidfile=/var/run/celery/%n.pid`).
#include <iostream>
#include <map>
#include <memory>
#include <set>

#include "cli/context.hpp"
#include "cli/node_spec.hpp"
#include "cli/output.hpp"
#include "util/error.hpp"

namespace ccmulti::cli {

namespace {

struct DirsOptions {
    bool create = false;
    std::string owner;  // USER or USER:GROUP
};

std::optional<Owner> owner_of(const DirsOptions& options) {
    if (options.owner.empty()) return std::nullopt;
    if (::geteuid() != 0) throw UsageError("--owner needs root: only root can give directories to another user");
    const auto colon = options.owner.find(':');
    return resolve_owner(options.owner.substr(0, colon),
                         colon == std::string::npos ? "" : options.owner.substr(colon + 1));
}

}  // namespace

void add_dirs_command(CLI::App& app, Context& context) {
    auto options = std::make_shared<DirsOptions>();
    auto* dirs = add_node_command(app, context, "dirs",
                                  "Show (and create, 0700) the run, log and state dirs; with nodes, check their "
                                  "pid and log file dirs, or create them with --create");
    dirs->add_flag("--json", context.json, "Machine-readable output");
    dirs->add_flag("--create", options->create, "Create the nodes' pid and log file dirs (0755) when missing");
    dirs->add_option("--owner", options->owner,
                     "As root: give what is created to USER[:GROUP] (the user the nodes run as)");
    dirs->callback([&context, options] {
        const auto owner = owner_of(*options);
        Dirs where = context.dirs();
        nlohmann::json out = {{"dirs", nlohmann::json::array()}, {"nodes", nlohmann::json::array()}};
        std::vector<std::vector<std::string>> rows{{"DIR", "PATH", "FROM", "STATE"}};
        std::map<std::string, std::string> states;
        for (const Dir* dir : {&where.run, &where.state, &where.log})  // the log dir may be inside the state dir
            states[dir->kind] = ensure_private_dir(*dir, owner) ? "created" : "ok";
        for (const Dir* dir : {&where.run, &where.log, &where.state}) {
            const std::string& state = states[dir->kind];
            rows.push_back({dir->kind, dir->path.string(), dir->origin, state});
            out["dirs"].push_back({{"kind", dir->kind}, {"path", dir->path}, {"from", dir->origin}, {"state", state}});
        }
        std::vector<naming::Node> nodes;
        if (!context.node_args.empty()) nodes = context.nodes();
        const auto cwd = std::filesystem::current_path();
        std::vector<std::vector<std::string>> node_rows{{"NODE", "PID FILE", "LOG FILE"}};
        std::set<std::filesystem::path> created;
        for (const auto& node : nodes) {
            const auto files = node_files(node, cwd);
            const char* pid_flag = node.options.contains("-p") ? "-p" : "--pidfile";
            const char* log_flag = node.options.contains("-f") ? "-f" : "--logfile";
            for (auto [file, flag, fallback] :
                 {std::tuple{files.pidfile, pid_flag, where.run}, std::tuple{files.logfile, log_flag, where.log}}) {
                FileDir dir{file.parent_path(), flag, file, fallback, node.name};
                if (!options->create)
                    check_file_dir(dir);
                else if (ensure_file_dir(dir, owner))
                    created.insert(dir.path);
            }
            out["nodes"].push_back({{"name", node.name}, {"pidfile", files.pidfile}, {"logfile", files.logfile}});
            node_rows.push_back({node.name, files.pidfile.string(), files.logfile.string()});
        }
        if (context.json) {
            out["created"] = created;
            return print_json(out);
        }
        print_table(rows);
        if (nodes.empty()) return;
        std::cout << '\n';
        print_table(node_rows);
        for (const auto& dir : created)
            std::cout << "created " << dir.string() << (owner ? " (owner " + owner->name + ")" : "") << '\n';
    });
}

}  // namespace ccmulti::cli
