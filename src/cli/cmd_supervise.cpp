// start, stop, stopwait, kill: the thin CLI over supervisor/. `start` locks the group, then runs the master
// in the foreground or as a daemon whose start report it relays; the stop commands go through the master's
// control socket, or the pid files when no master answers.
#include <unistd.h>

#include <iostream>
#include <memory>

#include "cli/context.hpp"
#include "cli/node_spec.hpp"
#include "cli/output.hpp"
#include "platform/daemon.hpp"
#include "supervisor/group_locks.hpp"
#include "supervisor/master.hpp"
#include "supervisor/start_report.hpp"
#include "supervisor/stop_nodes.hpp"

namespace ccmulti::cli {

namespace {

struct StartOptions {
    bool foreground = false;
    double start_secs = 1.0;
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

void start_command(Context& context, const StartOptions& options) {
    auto nodes = context.nodes();
    Dirs where = context.dirs();
    ensure_private_dir(where.run);
    ensure_private_dir(where.log);
    const auto cwd = std::filesystem::current_path();
    supervisor::MasterConfig config;
    NativeWorker native{std::filesystem::read_symlink("/proc/self/exe"),
                        {"--run-dir", where.run.path.string(), "--log-dir", where.log.path.string(), "--state-dir",
                         where.state.path.string()}};
    if (const auto& file = context.settings().file; !file.empty())
        native.global_args.insert(native.global_args.end(), {"-C", std::filesystem::absolute(file).string()});
    for (const auto& node : nodes)
        config.nodes.push_back(make_node_spec(node, cwd, to_ms(options.start_secs), native));
    config.run_dir = where.run.path;
    config.log_file = where.log.path / "master.log";
    config.foreground = options.foreground;
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
    start->callback([&context, start_options] { start_command(context, *start_options); });

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
