// show, names, expand, get: what a celery-multi command line means, without running anything.
#include <iostream>

#include "cli/context.hpp"
#include "cli/node_spec.hpp"
#include "cli/output.hpp"
#include "util/strings.hpp"

namespace ccmulti::cli {

namespace {

// "argv": exactly what `start` executes for the node (native worker, --exec program or Celery worker).
// "worker_args": the node's options as `celery multi` hands them to `celery worker` (app options first, pid
// and log file included): the naming grammar's answer, which the parity test compares with Celery's.
nlohmann::json node_json(const naming::Node& node, const NativeWorker& native) {
    return {{"name", node.name},
            {"shortname", node.shortname},
            {"host", node.host},
            {"argv", node_command_line(node, native)},
            {"worker_args", node.worker_args()},
            {"pidfile", node.pidfile()},
            {"logfile", node.logfile()}};
}

// The first node argument is the command's own operand (expand's template, get's node name).
std::string take_operand(Context& context, const std::string& what) {
    if (context.node_args.empty() || context.node_args.front().starts_with("-")) throw UsageError("missing " + what);
    std::string operand = context.node_args.front();
    context.node_args.erase(context.node_args.begin());
    return operand;
}

}  // namespace

void add_naming_commands(CLI::App& app, Context& context) {
    auto* show = add_node_command(app, context, "show", "Print the command line start runs for each node");
    show->add_flag("--json", context.json, "Machine-readable output");
    show->callback([&context] {
        const bool json = context.json;
        auto nodes = context.nodes();
        const NativeWorker native = native_worker(context);
        if (json) {
            nlohmann::json out = nlohmann::json::array();
            for (const auto& node : nodes) out.push_back(node_json(node, native));
            return print_json(out);
        }
        for (const auto& node : nodes) std::cout << shell_join(node_command_line(node, native)) << '\n';
    });

    auto* names = add_node_command(app, context, "names", "Print the node names");
    names->add_flag("--json", context.json, "Machine-readable output");
    names->callback([&context] {
        const bool json = context.json;
        auto nodes = context.nodes();
        if (json) {
            nlohmann::json out = nlohmann::json::array();
            for (const auto& node : nodes) out.push_back(node.name);
            return print_json(out);
        }
        for (const auto& node : nodes) std::cout << node.name << '\n';
    });

    auto* expand = add_node_command(app, context, "expand", "Expand a %n/%h/%d template once per node");
    expand->add_flag("--json", context.json, "Machine-readable output");
    expand->callback([&context] {
        const bool json = context.json;
        std::string tmpl = take_operand(context, "TEMPLATE: ccmulti expand TEMPLATE NODES...");
        auto nodes = context.nodes();
        nlohmann::json out = nlohmann::json::array();
        for (const auto& node : nodes) {
            std::string value = node.expand(tmpl, "the expand template");
            if (json)
                out.push_back({{"node", node.name}, {"value", value}});
            else
                std::cout << value << '\n';
        }
        if (json) print_json(out);
    });

    auto* get = add_node_command(app, context, "get", "Print the command line start runs for one node");
    get->add_flag("--json", context.json, "Machine-readable output");
    get->callback([&context] {
        const bool json = context.json;
        std::string wanted = take_operand(context, "NODE: ccmulti get NODE NODES...");
        auto nodes = context.nodes();
        const auto& node = naming::find_node(nodes, wanted);
        const NativeWorker native = native_worker(context);
        if (json) return print_json(node_json(node, native));
        std::cout << shell_join(node_command_line(node, native)) << '\n';
    });
}

}  // namespace ccmulti::cli
