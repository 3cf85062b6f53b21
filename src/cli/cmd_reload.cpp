// reload: the careful replacement of a running group's nodes (docs/supervisor.md, Reload), as SIGHUP to the
// master does. The master reads the configuration the group was started with again; added nodes start,
// removed ones stop warm, changed ones (or those named) are replaced one at a time, each replacement started
// beside the old process, which stops warm only once the replacement is ready. A replacement that fails is
// killed and the node serves on: reported with its log's last lines, exit 1. An invalid configuration changes
// nothing: its errors, exit 2.
#include <iostream>
#include <memory>

#include "cli/context.hpp"
#include "cli/output.hpp"
#include "naming/options.hpp"
#include "supervisor/control_client.hpp"
#include "supervisor/group_locks.hpp"

namespace ccmulti::cli {

namespace {

struct ReloadOptions {
    bool no_wait = false;
    bool all = false;
};

void print_outcome(const nlohmann::json& done) {
    for (const auto& name : done.value("removed", std::vector<std::string>{}))
        std::cout << name << "  removed from the configuration: stopping warm" << std::endl;
    for (const auto& failed : done.value("failed", nlohmann::json::array())) {
        const std::string node = failed.value("node", std::string()), error = failed.value("error", std::string());
        if (failed.value("added", false))
            print_error(node + " added to the configuration, but " + error + " (see `ccmulti status`)");
        else
            print_error(node + " reload failed: " + error + " (the old process serves on; fix it and reload again)");
        for (const auto& line : failed.value("log_tail", std::vector<std::string>{}))
            std::cerr << "    " << line << "\n";
    }
    for (const auto& name : done.value("unchanged", std::vector<std::string>{}))
        std::cout << name << "  unchanged: left as it runs (to replace it with new code: ccmulti reload "
                  << name.substr(0, name.find('@')) << ", or --all)" << std::endl;
    for (const auto& name : done.value("skipped", std::vector<std::string>{}))
        std::cout << name << "  not replaced (the reload stopped at the failure)" << std::endl;
    for (const auto& name : done.value("unknown", std::vector<std::string>{}))
        print_error(name + " is not a node of this group or its configuration");
    for (const auto& line : done.value("config_errors", std::vector<std::string>{})) print_error(line);
    if (done.contains("config_errors"))
        print_error("the configuration is not valid: the group keeps running as it was");
}

void reload_command(Context& context, const ReloadOptions& options) {
    const auto run_dir = context.group_dirs().run.path;
    auto master = supervisor::check_master(run_dir);
    auto client = master.running() ? supervisor::ControlClient::connect(run_dir) : std::nullopt;
    if (!client)
        throw Error("no ccmulti master is running in " + run_dir.string() +
                    "; nothing to reload: start the nodes with `ccmulti start NODES ...`");
    std::vector<std::string> names = naming::parse_args(context.node_args).names;
    client->send({{"cmd", "reload"}, {"nodes", names}, {"all", options.all}, {"wait", !options.no_wait}});
    nlohmann::json reply;
    if (client->receive(reply, std::chrono::seconds(5)) != supervisor::ControlClient::Status::message)
        throw Error("the ccmulti master (pid " + std::to_string(master.pid) + ") does not answer");
    if (!reply.value("ok", true)) throw Error("the master refused: " + reply.value("error", std::string()));
    for (;;) {
        if (client->receive(reply, std::chrono::hours(24)) != supervisor::ControlClient::Status::message) {
            print_error("the master closed the connection during the reload; see `ccmulti status`");
            context.exit = Exit::failure;
            return;
        }
        if (reply.value("done", false)) break;
        if (context.json) continue;
        const std::string event = reply.value("event", "");
        if (event == "replacing")
            std::cout << reply.value("node", "") << "  replacing pid " << reply.value("pid", 0) << std::endl;
        else if (event == "replaced")
            std::cout << reply.value("node", "") << "  replaced pid " << reply.value("old_pid", 0) << " → pid "
                      << reply.value("pid", 0) << std::endl;
        else if (event == "added")
            std::cout << reply.value("node", "") << "  added to the configuration: ready, pid " << reply.value("pid", 0)
                      << std::endl;
    }
    if (context.json)
        std::cout << reply.dump(2) << std::endl;
    else
        print_outcome(reply);
    if (reply.contains("config_errors"))
        context.exit = Exit::usage;
    else if (!reply.value("ok", true))
        context.exit = Exit::failure;
}

}  // namespace

void add_reload_command(CLI::App& app, Context& context) {
    auto options = std::make_shared<ReloadOptions>();
    auto* reload = add_node_command(
        app, context, "reload",
        "Re-read the group's configuration and replace nodes carefully (as SIGHUP to the master): added nodes "
        "start, removed ones stop warm, changed ones (or the NODES named) are replaced one at a time, the new "
        "process started before the old one stops; a replacement that fails leaves the old process serving");
    reload->add_flag("--json", context.json, "Print the master's final report as JSON");
    reload->add_flag("--all", options->all,
                     "Replace every node, changed or not (new code deployed, no --watch): one at a time, as above");
    reload->add_flag("--no-wait", options->no_wait, "Return once the master has accepted the request");
    reload->callback([&context, options] { reload_command(context, *options); });
}

}  // namespace ccmulti::cli
