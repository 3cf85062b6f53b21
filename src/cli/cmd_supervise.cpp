// start, stop, stopwait, kill, restart: the thin CLI over supervisor/. `start` locks the group, then runs the
// master in the foreground or as a daemon whose start report it relays; when a master already runs in the run
// dir, `start` hands it the new nodes over the control socket instead. The stop commands go through the
// master's control socket, or the pid files when no master answers; `restart` needs the master.
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <memory>

#include "cli/context.hpp"
#include "cli/node_spec.hpp"
#include "cli/output.hpp"
#include "platform/daemon.hpp"
#include "supervisor/control_client.hpp"
#include "supervisor/group_locks.hpp"
#include "supervisor/master.hpp"
#include "supervisor/start_report.hpp"
#include "supervisor/stop_nodes.hpp"

namespace ccmulti::cli {

namespace {

struct StartOptions {
    bool foreground = false;
    double start_secs = 1.0;
    double backoff_initial = 0.5, backoff_max = 60, backoff_reset = 60;
};

struct RestartOptions {
    bool all = false;
    bool no_wait = false;
};

struct StopOptions {
    bool wait = false;
    bool cold = false;
    std::optional<double> timeout;
};

std::chrono::milliseconds to_ms(double seconds) {
    return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
}

// Relays the daemon's start report (JSON lines, or a plain line for an error before the master ran).
Exit relay_start_report(int fd, const std::filesystem::path& master_log) {
    std::string buffer;
    char chunk[4096];
    bool done = false, ok = false;
    for (;;) {
        ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        buffer.append(chunk, static_cast<std::size_t>(n));
        std::size_t newline;
        while ((newline = buffer.find('\n')) != std::string::npos) {
            std::string line = buffer.substr(0, newline);
            buffer.erase(0, newline + 1);
            nlohmann::json event;
            try {
                event = nlohmann::json::parse(line);
            } catch (const std::exception&) {
                print_error(line);
                continue;
            }
            if (event.value("event", "") == "error") {
                print_error(event.value("error", ""));
                continue;
            }
            if (event.value("event", "") == "done") done = true;
            ok = supervisor::print_start_event(event);
        }
    }
    if (!done) {
        print_error("the master exited before it reported on its nodes; see " + master_log.string());
        return Exit::failure;
    }
    return ok ? Exit::ok : Exit::failure;
}

// Hands the nodes to the master already running in the run dir; prints the same lines as a first start.
Exit add_to_master(const supervisor::MasterConfig& config, pid_t master_pid) {
    auto client = supervisor::ControlClient::connect(config.run_dir);
    if (!client)
        throw Error("a ccmulti master (pid " + std::to_string(master_pid) + ") holds " + config.run_dir.string() +
                    " but does not listen on its control socket; stop it (ccmulti stop) or use another --run-dir");
    client->send({{"cmd", "add"}, {"nodes", config.nodes}});
    nlohmann::json reply;
    if (client->receive(reply, std::chrono::seconds(5)) != supervisor::ControlClient::Status::message)
        throw Error("the ccmulti master (pid " + std::to_string(master_pid) + ") in " + config.run_dir.string() +
                    " does not answer; see " + config.log_file.string());
    if (!reply.value("ok", true)) throw Error("the master refused the nodes: " + reply.value("error", std::string()));
    bool ok = true;
    for (const auto& refused : reply.value("refused", nlohmann::json::array())) {
        print_error(refused.value("error", std::string()));
        ok = false;
    }
    for (;;) {
        auto status = client->receive(reply, std::chrono::hours(24));
        if (status != supervisor::ControlClient::Status::message) {
            print_error("the master closed the connection before its new nodes were ready; see " +
                        config.log_file.string());
            return Exit::failure;
        }
        if (reply.value("done", false)) break;
        if (reply.value("event", "") == "failed") ok = false;
        supervisor::print_start_event(reply);
    }
    return ok ? Exit::ok : Exit::failure;
}

void start_command(Context& context, const StartOptions& options) {
    auto nodes = context.nodes();
    Dirs where = context.dirs();
    ensure_private_dir(where.run);
    ensure_private_dir(where.log);
    const auto cwd = std::filesystem::current_path();
    supervisor::MasterConfig config;
    const NativeWorker native = native_worker(context);  // the same as `show` prints
    for (const auto& node : nodes) config.nodes.push_back(make_node_spec(node, cwd, to_ms(options.start_secs), native));
    config.run_dir = where.run.path;
    config.app = context.settings().app.value_or("");
    config.log_file = where.log.path / "master.log";
    config.foreground = options.foreground;
    config.restart.initial = to_ms(options.backoff_initial);
    config.restart.max = std::max(config.restart.initial, to_ms(options.backoff_max));
    config.restart.reset_after = to_ms(options.backoff_reset);
    if (auto master = supervisor::check_master(config.run_dir); master.running()) {
        if (options.foreground)
            throw Error("a ccmulti master (pid " + std::to_string(master.pid) + ") already runs in " +
                        config.run_dir.string() + "; without --foreground, start adds the nodes to it");
        context.exit = add_to_master(config, master.pid);
        return;
    }
    auto locks = supervisor::acquire_group_locks(config.run_dir, config.nodes);

    if (options.foreground) {
        int code = supervisor::run_master(config, std::move(locks),
                                          [](const nlohmann::json& event) { supervisor::print_start_event(event); });
        context.exit = static_cast<Exit>(code);
        return;
    }
    // The daemon inherits the locks across fork (flock belongs to the open file, shared by both copies);
    // ours close when this process exits, the daemon's stay.
    // The daemon's cwd: the nodes' common --workdir, else where `start` ran.
    auto master_cwd = config.nodes.front().cwd;
    for (const auto& spec : config.nodes)
        if (spec.cwd != master_cwd) master_cwd = cwd;
    UniqueFd report = spawn_daemon(master_cwd, [&](UniqueFd pipe) {
        auto fd = std::make_shared<UniqueFd>(std::move(pipe));
        auto sink = [fd](const nlohmann::json& event) {
            if (!*fd) return;
            std::string line = event.dump() + "\n";
            write_all(fd->get(), line.data(), line.size());
            if (event.value("event", "") == "done") fd->reset();
        };
        try {
            return supervisor::run_master(config, std::move(locks), sink);
        } catch (const std::exception& e) {
            sink({{"event", "error"}, {"error", e.what()}});
            return 1;
        }
    });
    context.exit = relay_start_report(report.get(), config.log_file);
}

void print_outcome(const supervisor::StopOutcome& outcome) {
    for (const auto& line : outcome.stopped) std::cout << line.node << "  stopped  (" << line.detail << ")\n";
    for (const auto& line : outcome.signalled) std::cout << line.node << "  " << line.detail << '\n';
    for (const auto& line : outcome.not_running) std::cout << line.node << "  " << line.detail << '\n';
    std::cout << std::flush;
    for (const auto& line : outcome.failed) print_error(line.node + " could not be stopped: " + line.detail);
}

void stop_command(Context& context, const StopOptions& options, supervisor::StopMode mode, bool wait) {
    Dirs where = context.dirs();
    supervisor::StopRequest request;
    request.mode = mode;
    request.wait = wait;
    if (options.timeout) request.timeout = to_ms(*options.timeout);
    if (!context.node_args.empty()) {
        const auto cwd = std::filesystem::current_path();
        for (const auto& node : context.nodes()) request.targets.push_back(make_stop_target(node, cwd));
    }
    auto outcome = supervisor::stop_nodes(where.run.path, request,
                                          [](const std::string& line) { std::cout << line << std::endl; });
    if (outcome.stopped.empty() && outcome.signalled.empty() && outcome.not_running.empty() && outcome.failed.empty())
        std::cout << "no nodes running in " << where.run.path.string() << std::endl;
    print_outcome(outcome);
    context.exit = outcome.failed.empty() ? Exit::ok : Exit::failure;
}

void restart_command(Context& context, const RestartOptions& options) {
    const auto run_dir = context.dirs().run.path;
    nlohmann::json names = nlohmann::json::array();
    if (!context.node_args.empty())
        for (const auto& node : context.nodes()) names.push_back(node.name);
    auto master = supervisor::check_master(run_dir);
    auto client = master.running() ? supervisor::ControlClient::connect(run_dir) : std::nullopt;
    if (!client)
        throw Error("no ccmulti master is running in " + run_dir.string() +
                    "; nothing to restart: start the nodes with `ccmulti start NODES ...`");
    client->send({{"cmd", "restart"}, {"nodes", names}, {"all", options.all}, {"wait", !options.no_wait}});
    nlohmann::json reply;
    if (client->receive(reply, std::chrono::seconds(5)) != supervisor::ControlClient::Status::message)
        throw Error("the ccmulti master (pid " + std::to_string(master.pid) + ") does not answer");
    if (!reply.value("ok", true)) throw Error("the master refused: " + reply.value("error", std::string()));
    bool ok = true;
    for (const auto& name : reply.value("not_running", std::vector<std::string>{})) {
        std::cout << name << "  not running (or already stopping/restarting): not restarted" << std::endl;
        ok = false;
    }
    for (;;) {
        auto status = client->receive(reply, std::chrono::hours(24));
        if (status != supervisor::ControlClient::Status::message) {
            print_error("the master closed the connection during the restart; see `ccmulti status`");
            context.exit = Exit::failure;
            return;
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
            break;
        }
    }
    context.exit = ok ? Exit::ok : Exit::failure;
}

}  // namespace

void add_supervise_commands(CLI::App& app, Context& context) {
    auto start_options = std::make_shared<StartOptions>();
    auto* start = add_node_command(app, context, "start",
                                   "Start a master running these nodes (--exec 'PROGRAM ARGS', %n %h %d expanded, "
                                   "--exec:w1 per node; --stop-timeout S); return when every node is ready");
    start->add_flag("--foreground", start_options->foreground,
                    "Keep the master attached (systemd, a terminal): Ctrl+C stops warm, again cold");
    start
        ->add_option("--start-secs", start_options->start_secs,
                     "A node without READY=1 counts as ready after this many seconds up [1]")
        ->check(CLI::Range(0.0, 3600.0));
    start
        ->add_option("--backoff-initial", start_options->backoff_initial,
                     "Restart a crashed node after this many seconds, doubling per crash in a row [0.5]")
        ->check(CLI::Range(0.0, 3600.0));
    start
        ->add_option("--backoff-max", start_options->backoff_max,
                     "The longest wait between restarts; a crash-looping node keeps retrying at it [60]")
        ->check(CLI::Range(0.0, 86400.0));
    start
        ->add_option("--backoff-reset", start_options->backoff_reset,
                     "A node up this many seconds counts as healthy: its next crash starts the backoff over [60]")
        ->check(CLI::Range(0.0, 86400.0));
    start->callback([&context, start_options] { start_command(context, *start_options); });

    auto restart_options = std::make_shared<RestartOptions>();
    auto* restart = add_node_command(app, context, "restart",
                                     "Restart nodes (all of the group without NODES): one at a time, the next when "
                                     "the replacement is ready; --all: all at once");
    restart->add_flag("--all", restart_options->all, "Restart every named node at once instead of rolling");
    restart->add_flag("--no-wait", restart_options->no_wait, "Return once the master has accepted the request");
    restart->callback([&context, restart_options] { restart_command(context, *restart_options); });

    auto stop_options = std::make_shared<StopOptions>();
    auto add_stop_flags = [&](CLI::App* sub, bool with_wait) {
        if (with_wait) sub->add_flag("--wait", stop_options->wait, "Return when every node is gone");
        sub->add_option("--timeout", stop_options->timeout,
                        "One deadline for all: TERM, QUIT near it, KILL at it [each node's --stop-timeout, 60]")
            ->check(CLI::Range(0.0, 86400.0));
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
