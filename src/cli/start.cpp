#include "cli/start.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <set>
#include <thread>

#include "cli/broker_client.hpp"
#include "cli/node_spec.hpp"
#include "cli/output.hpp"
#include "dashboard/options.hpp"
#include "dashboard/entry.hpp"
#include "platform/daemon.hpp"
#include "platform/read_file.hpp"
#include "platform/watch_ignore.hpp"
#include "supervisor/code_watch.hpp"
#include "supervisor/control_client.hpp"
#include "supervisor/group_locks.hpp"
#include "supervisor/start_report.hpp"
#include "util/strings.hpp"

namespace ccmulti::cli {

std::chrono::milliseconds to_ms(double seconds) {
    return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
}

namespace {

// Where a master's log is: its master.log, or the journal for a master under systemd (which writes none).
std::string master_log_hint(const std::filesystem::path& log_file) {
    std::error_code ec;
    if (std::filesystem::exists(log_file, ec)) return log_file.string();
    return "its log in the journal (journalctl -u UNIT)";
}

// Relays the daemon's start report (JSON lines, or a plain line for an error before the master ran).
Exit relay_start_report(int fd, const std::filesystem::path& master_log) {
    std::string buffer;
    char chunk[4096];
    bool done = false, ok = false, not_ready = false;
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
            if (event.value("event", "") == "done") {
                done = true;
                not_ready = event.value("not_ready", false);
            }
            ok = supervisor::print_start_event(event);
        }
    }
    if (!done) {
        print_error("the master exited before it reported on its nodes; see " + master_log.string());
        return Exit::failure;
    }
    return !ok ? Exit::failure : not_ready ? Exit::not_ready : Exit::ok;
}

// Celery's "do not fork" debug switch, which its init script's `dryrun` sets: ccmulti says what it would run.
bool dry_run() {
    const char* fakefork = std::getenv("C_FAKEFORK");
    return fakefork && *fakefork && std::string(fakefork) != "0";
}

// Creates what the nodes' pid and log files need, as celery multi does: the run and log dirs (0700), or the
// directories named by --pidfile/--logfile (0755), owned by `owner` when root starts nodes for a user.
void prepare_dirs(const Dirs& where, const std::vector<supervisor::NodeSpec>& specs, bool native,
                  const std::optional<Owner>& owner) {
    std::set<std::filesystem::path> done;
    auto prepare = [&](const std::string& node, const std::filesystem::path& file, const char* flag,
                       const Dir& fallback) {
        const auto dir = file.parent_path();
        if (!done.insert(dir).second) return;
        if (dir == fallback.path)
            ensure_private_dir(fallback, owner);
        else
            ensure_file_dir({dir, flag, file, fallback, node}, owner);
    };
    for (const auto& spec : specs) {
        prepare(spec.name, spec.pidfile, "--pidfile", where.run);
        prepare(spec.name, spec.logfile, "--logfile", where.log);
    }
    if (native && done.insert(where.run.path).second) ensure_private_dir(where.run, owner);  // inspect sockets
}

// ccmulti's own files never reload a watching node: the run dirs (pid files, sockets), the log dirs and the state
// dir (the embedded broker's database, written all the time). A dir that holds a watched path (log_dir = ".") is
// not ignored whole: its ccmulti files are, by name.
void ignore_own_dirs(supervisor::NodeSpec& spec, const std::vector<std::filesystem::path>& dirs) {
    auto add = [&](std::string pattern) {
        if (std::find(spec.watch_ignore.begin(), spec.watch_ignore.end(), pattern) == spec.watch_ignore.end())
            spec.watch_ignore.push_back(std::move(pattern));
    };
    for (const auto& dir : dirs) {
        const auto base = dir.lexically_normal();
        const bool holds_watched = std::any_of(spec.watch.begin(), spec.watch.end(), [&](const auto& path) {
            auto [b, p] = std::mismatch(base.begin(), base.end(), path.begin(), path.end());
            return b == base.end() || (std::next(b) == base.end() && b->empty());
        });
        if (!holds_watched) {
            add(WatchIgnore::path_pattern(base));
            continue;
        }
        for (const char* glob : {"*.pid", "*.sock", "*.lock", "*.log", "*.log.*", "broker.sqlite3*"})
            add(WatchIgnore::path_pattern(base, glob));
    }
}

}  // namespace

Exit add_to_master(const supervisor::MasterConfig& config, pid_t master_pid) {
    auto client = supervisor::ControlClient::connect(config.run_dir);
    if (!client)
        throw Error("a ccmulti master (pid " + std::to_string(master_pid) + ") holds " + config.run_dir.string() +
                    " but does not listen on its control socket; stop it (ccmulti stop) or use another --run-dir");
    return add_to_master(config, master_pid, std::move(*client));
}

// Hands the nodes to the master already running in the run dir; prints the same lines as a first start.
Exit add_to_master(const supervisor::MasterConfig& config, pid_t master_pid, supervisor::ControlClient client) {
    client.send({{"cmd", "add"}, {"nodes", config.nodes}});
    nlohmann::json reply;
    if (client.receive(reply, std::chrono::seconds(5)) != supervisor::ControlClient::Status::message)
        throw Error("the ccmulti master (pid " + std::to_string(master_pid) + ") in " + config.run_dir.string() +
                    " does not answer; see " + master_log_hint(config.log_file));
    if (!reply.value("ok", true)) throw Error("the master refused the nodes: " + reply.value("error", std::string()));
    bool ok = true, not_ready = false;
    for (const auto& refused : reply.value("refused", nlohmann::json::array())) {
        // Already running under this master is what `start` wants (celery multi says so and exits 0 too).
        if (refused.contains("pid")) {
            std::cout << refused.value("error", std::string()) << std::endl;
            continue;
        }
        print_error(refused.value("error", std::string()));
        ok = false;
    }
    for (;;) {
        auto status = client.receive(reply, std::chrono::hours(24));
        if (status != supervisor::ControlClient::Status::message) {
            print_error("the master closed the connection before its new nodes were ready; see " +
                        master_log_hint(config.log_file));
            return Exit::failure;
        }
        if (reply.value("done", false)) break;
        if (reply.value("event", "") == "failed") ok = false;
        if (reply.value("event", "") == "not_ready") not_ready = true;
        supervisor::print_start_event(reply);
    }
    return !ok ? Exit::failure : not_ready ? Exit::not_ready : Exit::ok;
}

namespace {

// The dashboard as the master runs it (dashboard/service.hpp says why on a thread of its own).
class DashboardCompanion final : public supervisor::Companion {
public:
    DashboardCompanion(dashboard::Source source, const dashboard::AccessOptions& access)
        : background_(listening(std::move(source), access)) {}
    std::string url() const override { return background_->url(); }
    void stop() override { background_->stop(); }

private:
    static std::unique_ptr<dashboard::Served> listening(dashboard::Source source,
                                                         const dashboard::AccessOptions& access) {
        dashboard::load();  // a module that cannot be loaded says so, not "cannot listen"
        try {
            return dashboard::serve_in_background(std::move(source), access, std::chrono::milliseconds(1000));
        } catch (const Error&) {
            throw Error("the dashboard cannot listen on " + access.bind.host + ":" + std::to_string(access.bind.port) +
                        " (in use, or not an address of this machine); choose another with --dashboard=HOST:PORT "
                        "or [dashboard] bind");
        }
    }
    std::unique_ptr<dashboard::Served> background_;
};

// `--dashboard[=BIND]` or `[dashboard] serve = true`: what the master will serve, checked now (a bad address or
// token file is a usage error of `start`, before anything runs); none otherwise.
std::function<std::unique_ptr<supervisor::Companion>()> dashboard_companion(const Context& context,
                                                                            const StartOptions& options,
                                                                            const std::filesystem::path& run_dir) {
    const auto& configured = context.settings().dashboard;
    if (!options.dashboard && !configured.serve.value_or(false)) return {};
    std::string bind =
        !options.dashboard_bind.empty() ? options.dashboard_bind : configured.bind.value_or(dashboard::default_bind);
    std::optional<std::string> token_file;
    if (configured.auth_token_file.is_set()) token_file = *configured.auth_token_file;
    auto access = dashboard::access_options(bind, std::nullopt, token_file);
    dashboard::Source source{run_dir, broker_options(context, BrokerFlag{})};
    // The master keeps root's identity: the broker's SQLite files it opened (and created) would be root's, and the
    // nodes, running as another user, could no longer write them.
    if (auto owner = context.node_owner();
        owner && owner->uid != ::geteuid() && source.broker.url.starts_with("sqlite"))
        throw UsageError("the master cannot serve the dashboard while its nodes run as " + owner->name +
                         " on the embedded SQLite broker (it would open their database as root); run `ccmulti "
                         "dashboard` as " +
                         owner->name + " instead, or use a Redis broker");
    return [source, access]() -> std::unique_ptr<supervisor::Companion> {
        return std::make_unique<DashboardCompanion>(source, access);
    };
}

}  // namespace

std::optional<supervisor::MasterConfig> plan_start(const Context& context, const StartOptions& options) {
    auto nodes = context.nodes();
    const Dirs where = context.dirs();
    const Dirs group = context.group_dirs();
    const auto owner = context.node_owner();
    const auto cwd = std::filesystem::current_path();
    supervisor::MasterConfig config;
    const NativeWorker native = native_worker(context);  // the same as `show` and `get` print
    // The CCMULTI_* settings of this command reach its nodes even when an older master (with its own
    // environment) starts them: `CCMULTI_BROKER_URL=… ccmulti start w3` adding w3 to a running group.
    std::vector<std::string> settings_env;
    for (char** e = environ; *e; ++e)
        if (std::string_view(*e).starts_with("CCMULTI_") &&
            !std::string_view(*e).starts_with(std::string(supervisor::reload_plan_env) + "="))
            settings_env.emplace_back(*e);
    bool any_native = false;
    for (const auto& node : nodes) {
        auto spec = make_node_spec(node, cwd, to_ms(options.start_secs), native);
        spec.run_as = owner;
        spec.env.insert(spec.env.begin(), settings_env.begin(), settings_env.end());
        any_native = any_native || spec.argv.front() == native.program.string();
        // `--logfile=/dev/full`, a FIFO or /proc/self/mem would be taken, then fail or hang at the first line.
        if (auto problem = log_path_problem(spec.logfile); !problem.empty())
            throw UsageError("log file " + spec.logfile.string() + " of " + spec.name + ": " + problem +
                             "; give --logfile the path of a regular file you can write");
        if (!spec.watch.empty())
            ignore_own_dirs(spec, {where.run.path, where.log.path, where.state.path, group.run.path, group.log.path});
        config.nodes.push_back(std::move(spec));
    }
    if (context.verbose || dry_run())
        for (const auto& spec : config.nodes) {
            std::vector<std::string> words;
            for (const auto& word : spec.argv) words.push_back(shell_quote(word));
            std::cout << "> " << spec.name << ": " << join(words, " ") << std::endl;
        }
    if (dry_run()) {
        std::cout << "dry run (C_FAKEFORK is set): nothing started" << std::endl;
        return std::nullopt;
    }
    config.run_dir = group.run.path;
    config.app = context.settings().app.value_or("");
    config.log_file = group.log.path / "master.log";
    config.foreground = options.foreground;
    config.restart.initial = to_ms(options.backoff_initial);
    config.restart.max = std::max(config.restart.initial, to_ms(options.backoff_max));
    config.restart.reset_after = to_ms(options.backoff_reset);
    // A watch limit (fs.inotify.max_user_watches) fails `start` here, exit 2, before any master runs.
    try {
        supervisor::check_code_watch(config.nodes);
    } catch (const UsageError&) {
        throw;
    } catch (const Error& e) {
        throw UsageError(e.what());
    }
    config.dashboard = dashboard_companion(context, options, group.run.path);
    prepare_dirs(where, config.nodes, any_native, owner);
    ensure_private_dir(group.run, owner);  // master.pid, master.sock
    ensure_private_dir(group.log, owner);  // master.log
    return config;
}

namespace {

// How long a `start` waits for a master that another `start` is bringing up in the same run dir (it holds
// master.pid but does not listen yet) before it says so.
constexpr auto master_startup_wait = std::chrono::seconds(30);

// The group's locks, or the running master to add the nodes to: whichever `start` takes master.pid first runs
// the master, and one that comes while that master is still starting waits until it listens, then adds its
// nodes to it. So concurrent `start`s with different nodes all succeed, under one master.
struct GroupEntry {
    std::optional<supervisor::GroupLocks> locks;
    std::optional<supervisor::ControlClient> master;
    pid_t master_pid = 0;
};

GroupEntry enter_group(const supervisor::MasterConfig& config) {
    const auto deadline = std::chrono::steady_clock::now() + master_startup_wait;
    for (;;) {
        auto master = supervisor::check_master(config.run_dir);
        if (master.running()) {
            if (auto client = supervisor::ControlClient::connect(config.run_dir))
                return {std::nullopt, std::move(client), master.pid};
        } else if (auto locks = supervisor::try_acquire_group_locks(config.run_dir, config.nodes)) {
            return {std::move(locks), std::nullopt, 0};
        }
        if (std::chrono::steady_clock::now() > deadline) {
            std::string who = master.pid ? " (pid " + std::to_string(master.pid) + ")" : "";
            throw Error("another ccmulti master" + who + " holds " + config.run_dir.string() +
                        " but has not listened on " + supervisor::control_socket(config.run_dir).string() + " for " +
                        std::to_string(master_startup_wait.count()) + "s; see " + master_log_hint(config.log_file) +
                        ", stop it (ccmulti stop), or use another --run-dir");
        }
        // try_acquire_group_locks already waited a moment when the lock was held by a master not yet up.
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

}  // namespace

void start_command(Context& context, const StartOptions& options) {
    if (const char* only_plan = std::getenv(supervisor::reload_plan_env); only_plan && *only_plan) {
        // A master reloading this group (supervisor/master_reload_plan.cpp): the specs, nothing started.
        auto plan = plan_start(context, options);
        nlohmann::json out = {{"nodes", plan ? nlohmann::json(plan->nodes) : nlohmann::json::array()}};
        std::cout << out.dump() << std::endl;
        return;
    }
    auto plan = plan_start(context, options);
    if (!plan) return;  // a dry run
    plan->invocation = context.invocation;
    plan->invocation_cwd = std::filesystem::current_path();
    const supervisor::MasterConfig& config = *plan;
    auto entry = enter_group(config);
    if (entry.master) {
        if (options.foreground)
            throw Error("a ccmulti master (pid " + std::to_string(entry.master_pid) + ") already runs in " +
                        config.run_dir.string() + "; without --foreground, start adds the nodes to it");
        context.exit = add_to_master(config, entry.master_pid, std::move(*entry.master));
        return;
    }
    auto locks = std::move(*entry.locks);

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
        if (spec.cwd != master_cwd) master_cwd = std::filesystem::current_path();
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

}  // namespace ccmulti::cli
