#include "cli/context.hpp"

#include <unistd.h>

#include "platform/host.hpp"

namespace ccmulti::cli {

Dirs Context::dirs() const {
    return resolve_dirs({DirLayer{run_dir, log_dir, state_dir, ""}}, geteuid(), real_getenv,
                        std::filesystem::current_path());
}

std::vector<naming::Node> Context::nodes() const {
    Dirs where = dirs();
    naming::NamingDefaults defaults{hostname(), (where.run.path / "%n.pid").string(),
                                    (where.log.path / "%n%I.log").string()};
    return naming::build_nodes(naming::parse_args(node_args), defaults);
}

CLI::App* add_node_command(CLI::App& app, Context& context, const std::string& name, const std::string& help) {
    context.node_commands.insert(name);
    auto* sub = app.add_subcommand(name, help);
    sub->footer("Node arguments, as for celery multi: NODES... [OPTIONS] [-- WORKER ARGS], e.g.\n"
                "  w1 w2 -c 2 -Q:w1 high --logfile=%n%I.log      3 -c:2 8 --range-prefix=w\n");
    return sub;
}

}  // namespace ccmulti::cli
