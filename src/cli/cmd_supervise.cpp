// start, stop, stopwait, kill, restart: the thin CLI over supervisor/. `start` (cli/start.hpp) and `restart`
// (cmd_restart.cpp) are in their own files; the stop commands go through the master's control socket, or the
// pid files when no master answers.
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <memory>

#include "cli/broker_client.hpp"
#include "cli/context.hpp"
#include "cli/node_spec.hpp"
#include "cli/output.hpp"
#include "cli/start.hpp"
#include "platform/daemon.hpp"
#include "supervisor/control_client.hpp"
#include "supervisor/group_locks.hpp"
#include "supervisor/master.hpp"
#include "supervisor/start_report.hpp"
#include "supervisor/stop_nodes.hpp"
#include "util/strings.hpp"

namespace ccmulti::cli {

namespace {

struct StopOptions {
    bool wait = false;
    bool cold = false;
    std::optional<double> timeout;
};

void print_outcome(const supervisor::StopOutcome& outcome) {
    for (const auto& line : outcome.stopped) std::cout << line.node << "  stopped  (" << line.detail << ")\n";
    for (const auto& line : outcome.signalled) std::cout << line.node << "  " << line.detail << '\n';
    for (const auto& line : outcome.not_running) std::cout << line.node << "  " << line.detail << '\n';
    for (const auto& line : outcome.leftovers) std::cout << line.node << "  " << line.detail << '\n';
    std::cout << std::flush;
    for (const auto& line : outcome.failed) print_error(line.node + " could not be stopped: " + line.detail);
}

void stop_command(Context& context, const StopOptions& options, supervisor::StopMode mode, bool wait) {
    Dirs where = context.group_dirs();
    supervisor::StopRequest request;
    request.mode = mode;
    request.wait = wait;
    if (options.timeout) request.timeout = to_ms(*options.timeout);
    if (context.names_nodes()) {
        const auto cwd = std::filesystem::current_path();
        for (const auto& node : context.nodes()) request.targets.push_back(make_stop_target(node, cwd));
    }
    auto outcome = supervisor::stop_nodes(where.run.path, request,
                                          [](const std::string& line) { std::cout << line << std::endl; });
    if (outcome.stopped.empty() && outcome.signalled.empty() && outcome.not_running.empty() && outcome.failed.empty() &&
        outcome.leftovers.empty()) {
        std::cout << "no nodes running in " << where.run.path.string();
        std::vector<std::string> elsewhere;
        for (const auto& dir : supervisor::running_master_dirs(where.run.path)) elsewhere.push_back(dir.string());
        if (!elsewhere.empty()) std::cout << " (masters run in: " << join(elsewhere, ", ") << ")";
        std::cout << std::endl;
    }
    print_outcome(outcome);
    context.exit = outcome.failed.empty() ? Exit::ok : Exit::failure;
}

}  // namespace

void add_supervise_commands(CLI::App& app, Context& context) {
    auto start_options = std::make_shared<StartOptions>();
    auto* start = add_node_command(app, context, "start",
                                   "Start a master running these nodes (--exec 'PROGRAM ARGS', %n %h %d expanded, "
                                   "--exec:w1 per node; --stop-timeout S); return when every node is ready");
    start->footer(
        "Node arguments, as for celery multi: NODES... [OPTIONS] [-- WORKER ARGS], e.g.\n"
        "  w1 w2 -c 2 -Q:w1 high --logfile=%n%I.log      3 -c:2 8 --range-prefix=w\n"
        "Hot reload (node options; per node as --watch:w1 PATH; docs/configuration.md, [watch]):\n"
        "  --watch PATH             Replace the node when a file below PATH changes (repeatable; must exist)\n"
        "  --watch-ignore GLOB      Ignore such changes too, e.g. '*.log' or 'data/' (repeatable)\n"
        "  --watch-debounce DURATION  Quiet time after the last change of a burst: 300ms, 0.5s [300ms]\n");
    start->add_flag("--foreground", start_options->foreground,
                    "Keep the master attached (systemd, a terminal): Ctrl+C stops warm, again cold");
    start
        ->add_option("--start-secs", start_options->start_secs,
                     "A node without READY=1 counts as ready after this many seconds up [1]")
        ->check(seconds_between(0.0, 3600.0));
    start
        ->add_option("--backoff-initial", start_options->backoff_initial,
                     "Restart a crashed node after this many seconds, doubling per crash in a row [0.5]")
        ->check(seconds_between(0.0, 3600.0));
    start
        ->add_option("--backoff-max", start_options->backoff_max,
                     "The longest wait between restarts; a crash-looping node keeps retrying at it [60]")
        ->check(seconds_between(0.0, 86400.0));
    start
        ->add_option("--backoff-reset", start_options->backoff_reset,
                     "A node up this many seconds counts as healthy: its next crash starts the backoff over [60]")
        ->check(seconds_between(0.0, 86400.0));
    auto* dashboard =
        start
            ->add_option("--dashboard", start_options->dashboard_bind,
                         "The master serves the dashboard, on --dashboard=HOST:PORT or [dashboard] bind, else "
                         "127.0.0.1:5555 (as `ccmulti dashboard`; `status` shows its URL)")
            ->expected(0, 1);
    start->callback([&context, start_options, dashboard] {
        start_options->dashboard = dashboard->count() > 0;
        start_command(context, *start_options);
    });

    auto stop_options = std::make_shared<StopOptions>();
    auto add_stop_flags = [&](CLI::App* sub, bool with_wait) {
        if (with_wait) sub->add_flag("--wait", stop_options->wait, "Return when every node is gone");
        sub->add_option("--timeout", stop_options->timeout,
                        "One deadline for all: TERM, QUIT near it, KILL at it [each node's --stop-timeout, 60]")
            ->check(seconds_between(0.0, 86400.0));
        sub->add_flag("--cold", stop_options->cold, "Cold shutdown: SIGQUIT first (running tasks are terminated)");
    };
    auto* stop = add_node_command(app, context, "stop", "Stop nodes (all of the group without NODES)");
    add_stop_flags(stop, true);
    stop->callback([&context, stop_options] {
        stop_command(context, *stop_options,
                     stop_options->cold ? supervisor::StopMode::cold : supervisor::StopMode::warm, stop_options->wait);
    });
    auto* stopwait = add_node_command(app, context, "stopwait", "stop --wait");
    add_stop_flags(stopwait, false);
    stopwait->callback([&context, stop_options] {
        stop_command(context, *stop_options,
                     stop_options->cold ? supervisor::StopMode::cold : supervisor::StopMode::warm, true);
    });
    auto* kill = add_node_command(app, context, "kill", "SIGKILL the nodes' process groups (all without NODES)");
    kill->callback(
        [&context, stop_options] { stop_command(context, *stop_options, supervisor::StopMode::kill, true); });
}

}  // namespace ccmulti::cli
