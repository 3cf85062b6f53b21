// restart: rolling by default (the next node once the replacement is ready), --all at once.
//
//   ccmulti restart                      the group as it runs, with the options it was started with
//   ccmulti restart w1 w2 -c 4 ...       as celery multi restart: the command line given is what runs afterwards
//                                        (ExecReload after editing CELERYD_OPTS takes effect), nodes that are
//                                        not running are started, and with no master running it is a start
#include <cstdlib>
#include <iostream>
#include <memory>

#include "cli/context.hpp"
#include "cli/output.hpp"
#include "cli/start.hpp"
#include "supervisor/control_client.hpp"
#include "supervisor/group_locks.hpp"

namespace ccmulti::cli {

namespace {

struct RestartOptions {
    bool all = false;
    bool no_wait = false;
};

// One restart request to the master and its progress. Returns whether every node came back; `not_running`
// receives the nodes the master has but does not run (or does not have).
bool restart_through(supervisor::ControlClient& client, pid_t master_pid, const nlohmann::json& request,
                     std::vector<std::string>& not_running) {
    client.send(request);
    nlohmann::json reply;
    if (client.receive(reply, std::chrono::seconds(5)) != supervisor::ControlClient::Status::message)
        throw Error("the ccmulti master (pid " + std::to_string(master_pid) + ") does not answer");
    if (!reply.value("ok", true)) throw Error("the master refused: " + reply.value("error", std::string()));
    bool ok = true;
    for (const auto& refused : reply.value("refused", nlohmann::json::array())) {
        print_error(refused.value("node", std::string()) + " not restarted: " + refused.value("error", std::string()));
        ok = false;
    }
    not_running = reply.value("not_running", std::vector<std::string>{});
    for (;;) {
        if (client.receive(reply, std::chrono::hours(24)) != supervisor::ControlClient::Status::message) {
            print_error("the master closed the connection during the restart; see `ccmulti status`");
            return false;
        }
        const std::string event = reply.value("event", "");
        if (event == "restarting") {
            std::cout << reply.value("node", "") << "  restarting" << std::endl;
        } else if (event == "restarted") {
            std::cout << reply.value("node", "") << "  pid " << reply.value("pid", 0) << "  ready" << std::endl;
        } else if (reply.value("done", false)) {
            for (const auto& failed : reply.value("failed", nlohmann::json::array())) {
                print_error(failed.value("node", std::string()) + " did not come back: " +
                            failed.value("error", std::string()) + " (it keeps being restarted; see ccmulti status)");
                ok = false;
            }
            for (const auto& name : reply.value("skipped", std::vector<std::string>{})) {
                std::cout << name << "  not restarted (the rolling restart stopped at the failure)" << std::endl;
                ok = false;
            }
            return ok;
        }
    }
}

void restart_command(Context& context, const RestartOptions& options) {
    // A master started by `restart` (none ran) re-reads its configuration through this command line: the specs.
    if (const char* only_plan = std::getenv(supervisor::reload_plan_env); only_plan && *only_plan)
        return start_command(context, StartOptions{});
    const auto run_dir = context.group_dirs().run.path;
    auto master = supervisor::check_master(run_dir);
    auto client = master.running() ? supervisor::ControlClient::connect(run_dir) : std::nullopt;
    nlohmann::json request = {{"cmd", "restart"}, {"all", options.all}, {"wait", !options.no_wait}};
    std::vector<std::string> not_running;

    if (!context.names_nodes()) {  // the group as it runs
        if (!client)
            throw Error("no ccmulti master is running in " + run_dir.string() +
                        "; nothing to restart: start the nodes with `ccmulti start NODES ...`");
        request["nodes"] = nlohmann::json::array();
        bool ok = restart_through(*client, master.pid, request, not_running);
        for (const auto& name : not_running)
            std::cout << name << "  not running (or already stopping/restarting): not restarted" << std::endl;
        context.exit = ok && not_running.empty() ? Exit::ok : Exit::failure;
        return;
    }

    if (!client) {
        std::cout << "no nodes running in " << run_dir.string() << ": starting them" << std::endl;
        return start_command(context, StartOptions{});
    }
    auto plan = plan_start(context, StartOptions{});
    if (!plan) return;  // a dry run
    request["nodes"] = nlohmann::json::array();
    for (const auto& spec : plan->nodes) request["nodes"].push_back(spec.name);
    request["specs"] = plan->nodes;
    bool ok = restart_through(*client, master.pid, request, not_running);
    // What is not running is started, with the same command line.
    std::erase_if(plan->nodes, [&](const supervisor::NodeSpec& spec) {
        return std::find(not_running.begin(), not_running.end(), spec.name) == not_running.end();
    });
    if (!plan->nodes.empty() && add_to_master(*plan, master.pid) != Exit::ok) ok = false;
    context.exit = ok ? Exit::ok : Exit::failure;
}

}  // namespace

void add_restart_command(CLI::App& app, Context& context) {
    auto options = std::make_shared<RestartOptions>();
    auto* restart = add_node_command(app, context, "restart",
                                     "Restart nodes (all of the group without NODES): one at a time, the next when "
                                     "the replacement is ready; --all: all at once. With NODES and options, as "
                                     "celery multi: those options take effect and missing nodes are started");
    restart->add_flag("--all", options->all, "Restart every named node at once instead of rolling");
    restart->add_flag("--no-wait", options->no_wait, "Return once the master has accepted the request");
    restart->callback([&context, options] { restart_command(context, *options); });
}

}  // namespace ccmulti::cli
