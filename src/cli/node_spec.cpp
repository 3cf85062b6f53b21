#include "cli/node_spec.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <set>

#include "broker/connect.hpp"
#include "cli/broker_client.hpp"
#include "cli/celery_runner.hpp"
#include "platform/watch_ignore.hpp"
#include "util/error.hpp"
#include "util/shell_split.hpp"
#include "util/strings.hpp"

namespace fs = std::filesystem;

namespace ccmulti::cli {

std::chrono::milliseconds parse_debounce(const std::string& text, const std::string& what) {
    auto ms = parse_duration_ms(text, max_watch_debounce.count());
    if (!ms)
        throw UsageError(what + " takes a duration from 0 to 60s (300ms, 0.5s, or seconds: 0.5), got '" + text + "'");
    return std::chrono::milliseconds(*ms);
}

std::string main_process_template(std::string text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 1 < text.size() && (text[i + 1] == 'i' || text[i + 1] == 'I')) {
            if (text[i + 1] == 'i') out += '0';
            ++i;
            continue;
        }
        out += text[i];
    }
    return out;
}

namespace {

std::optional<std::chrono::milliseconds> seconds_option(const naming::Node& node, const char* flag) {
    auto value = node.option({flag});
    if (!value) return std::nullopt;
    double seconds = 0;
    auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), seconds);
    if (ec != std::errc{} || end != value->data() + value->size() || !(seconds >= 0 && seconds <= 86400))
        throw UsageError(std::string(flag) + " for " + node.name + " must be seconds between 0 and 86400, got '" +
                         *value + "'");
    return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
}

// What a node watches for hot reload (supervisor/code_watch.hpp): --watch PATH (repeatable) resolved against
// `cwd`, each of which must exist now; --watch-ignore GLOB (repeatable); --watch-debounce DURATION.
void watch_options(const naming::Node& node, const fs::path& cwd, supervisor::NodeSpec& spec) {
    for (const auto& given : node.option_values("--watch")) {
        if (given.empty())
            throw UsageError("--watch of " + node.name + " needs a path: a directory (watched recursively) or a file");
        auto path = (cwd / given).lexically_normal();
        if (!path.has_filename() && path.has_relative_path()) path = path.parent_path();  // "proj/" → "proj"
        std::error_code error;
        if (!fs::exists(path, error))
            throw UsageError("--watch path " + given + " of " + node.name + " does not exist" +
                             (error && error.value() != ENOENT ? " (" + error.message() + ")" : "") +
                             "; watch an existing directory or file");
        if (std::find(spec.watch.begin(), spec.watch.end(), path) == spec.watch.end()) spec.watch.push_back(path);
    }
    for (const auto& glob : node.option_values("--watch-ignore")) {
        if (glob.empty()) throw UsageError("--watch-ignore of " + node.name + " needs a glob, e.g. '*.log' or 'data/'");
        spec.watch_ignore.push_back(glob);
    }
    if (auto debounce = node.option({"--watch-debounce"}))
        spec.watch_debounce = parse_debounce(*debounce, "--watch-debounce of " + node.name);
}

fs::path node_cwd(const naming::Node& node, const fs::path& cwd) {
    auto workdir = node.option({"--workdir"});
    return workdir ? (cwd / *workdir).lexically_normal() : cwd;
}

fs::path node_file(const std::string& expanded, const fs::path& base) {
    return (base / main_process_template(expanded)).lexically_normal();
}

}  // namespace

bool is_supervisor_option(const std::string& flag) {
    static const std::set<std::string> own = {
        "--exec",       "--pidfile", "-p",    "--logfile",       "-f",      "--stop-timeout", "--workdir",
        "--start-secs", "--uid",     "--gid", "--start-timeout", "--watch", "--watch-ignore", "--watch-debounce"};
    return own.contains(flag);
}

namespace {

// What `ccmulti worker` takes (cli/cmd_worker.cpp, cli/broker_client.cpp): the `-- ARGS` a native node accepts.
// Keep in step with those files.
const std::set<std::string>& native_worker_flags() {
    static const std::set<std::string> flags = {"-n",
                                                "--hostname",
                                                "-Q",
                                                "--queues",
                                                "-c",
                                                "--concurrency",
                                                "-l",
                                                "--loglevel",
                                                "--prefetch-multiplier",
                                                "--time-limit",
                                                "--soft-time-limit",
                                                "--max-tasks-per-child",
                                                "--max-memory-per-child",
                                                "--plugin",
                                                "-E",
                                                "--task-events",
                                                "--without-heartbeat",
                                                "-b",
                                                "--broker",
                                                "--result-backend"};
    return flags;
}

// `celery multi start w1 -- --loglevel=DEBUG`: what follows `--` goes to every worker. The native worker takes
// its own options there; anything else (a Celery-only option, a `broker.url=…` setting) is an error now, naming
// what it takes, rather than a node that fails to start.
std::vector<std::string> native_passthrough(const naming::Node& node) {
    std::vector<std::string> args(node.passthrough.begin(), node.passthrough.end());
    if (!args.empty() && args.front() == "--") args.erase(args.begin());
    bool value_expected = false;
    for (const auto& arg : args) {
        if (value_expected && !arg.starts_with("-")) {
            value_expected = false;
            continue;
        }
        const std::string flag = arg.substr(0, arg.find('='));
        if (!native_worker_flags().contains(flag)) {
            std::string known;
            for (const auto& name : native_worker_flags()) known += (known.empty() ? "" : " ") + name;
            throw UsageError("'" + arg + "' after -- is not an option of the native worker (node " + node.name +
                             "); it takes: " + known + ". For a Celery worker give -A/--app or --exec");
        }
        value_expected = arg.find('=') == std::string::npos;
    }
    return args;
}

std::vector<std::string> native_worker_argv(const naming::Node& node, const NativeWorker& native) {
    std::vector<std::string> argv{native.program.string()};
    argv.insert(argv.end(), native.global_args.begin(), native.global_args.end());
    argv.push_back("worker");
    for (const auto& [flag, value] : node.options.items()) {
        if (is_supervisor_option(flag)) continue;
        if (!value) {
            argv.push_back(flag);
        } else if (flag.starts_with("--")) {
            argv.push_back(flag + "=" + node.expand(*value, flag));
        } else {
            argv.push_back(flag);
            argv.push_back(node.expand(*value, flag));
        }
    }
    auto passthrough = native_passthrough(node);
    argv.insert(argv.end(), passthrough.begin(), passthrough.end());
    return argv;
}

}  // namespace

supervisor::NodeSpec make_node_spec(const naming::Node& node, const fs::path& cwd, std::chrono::milliseconds start_secs,
                                    const NativeWorker& native) {
    supervisor::NodeSpec spec;
    spec.name = node.name;
    const auto* exec = node.options.find("--exec");
    if (exec && exec->value && !exec->value->empty()) {
        for (const auto& word : shell_split(*exec->value, "--exec of " + node.name))
            spec.argv.push_back(main_process_template(node.expand(word, "--exec")));
        if (spec.argv.empty()) throw UsageError("--exec of " + node.name + " names no program");
        spec.can_overlap = true;     // a program of the user's: a reload starts the new one first (docs/supervisor.md)
    } else if (runs_celery(node)) {  // -A/--app without --exec: a Celery worker (cli/celery_runner.hpp)
        spec.argv = celery_argv(node);
        spec.ready_pattern = celery_ready_pattern(node);
        // Two Celery workers of one node name coexist for the overlap (Celery warns of the duplicate nodename,
        // and its pidbox queue is shared by both until the old one's warm stop ends).
        spec.can_overlap = true;
    } else {
        // The worker would refuse a result backend it cannot store in, after start had said the node runs.
        auto results = node.option({"--result-backend"});
        if (results && results->empty()) throw UsageError("--result-backend of " + node.name + " needs a URL");
        auto broker_url = node.option({"-b", "--broker"}).value_or(native.broker_url);
        if (auto url = results.value_or(native.result_backend); !url.empty())
            broker::check_result_url(broker::with_transport_options(url, native.result_transport),
                                     broker_url.empty() ? broker::default_broker_url : broker_url);
        if (!broker_url.empty())
            broker::check_broker_url(broker::with_transport_options(broker_url, native.broker_transport));
        spec.argv = native_worker_argv(node, native);
        spec.notifies = true;  // READY=1 once it consumes: the start_secs fallback is for programs that cannot
        // Two native workers of one name coexist (each its own inspect socket and consumer id; inspect merges
        // their replies): a reload starts the new one first.
        spec.can_overlap = true;
    }
    spec.cwd = node_cwd(node, cwd);
    // "./bin/worker" means relative to the node's cwd, where it runs, not to the master's.
    if (spec.argv[0].find('/') != std::string::npos && spec.argv[0][0] != '/')
        spec.argv[0] = (spec.cwd / spec.argv[0]).lexically_normal().string();
    auto files = node_files(node, cwd);
    spec.pidfile = files.pidfile;
    spec.logfile = files.logfile;
    if (auto queues = node.option({"-Q", "--queues"}); queues && !queues->empty()) spec.queues = split(*queues, ',');
    if (auto concurrency = node.option({"-c", "--concurrency"})) {
        if (!is_digits(*concurrency) || concurrency->size() > 4 || std::stoi(*concurrency) < 1)
            throw UsageError("-c for " + node.name + " must be a number of processes (1-9999), got '" + *concurrency +
                             "'");
        spec.concurrency = std::stoi(*concurrency);
    }
    spec.stop_timeout = seconds_option(node, "--stop-timeout");
    spec.start_secs = start_secs;
    if (auto timeout = seconds_option(node, "--start-timeout"); timeout && timeout->count() > 0)
        spec.start_timeout = *timeout;
    watch_options(node, cwd, spec);
    if (!spec.watch.empty()) {
        // The node's own files never reload it: its pid file, and the logs of its main and pool processes.
        spec.watch_ignore.push_back(WatchIgnore::path_pattern(spec.pidfile));
        const auto log = (spec.cwd / node.logfile()).lexically_normal();
        const std::string file = log.filename().string();
        std::string name;
        for (std::size_t i = 0; i < file.size(); ++i) {
            if (file[i] == '%' && i + 1 < file.size() && (file[i + 1] == 'i' || file[i + 1] == 'I')) {
                name += '*';
                ++i;
                continue;
            }
            if (file[i] == '*' || file[i] == '?' || file[i] == '[' || file[i] == '\\') name += '\\';
            name += file[i];
        }
        spec.watch_ignore.push_back(WatchIgnore::path_pattern(log.parent_path(), name));
    }
    return spec;
}

NativeWorker native_worker(const Context& context) {
    Dirs where = context.dirs();
    NativeWorker native{std::filesystem::read_symlink("/proc/self/exe"),
                        {"--run-dir", where.run.path.string(), "--log-dir", where.log.path.string(), "--state-dir",
                         where.state.path.string()},
                        context.settings().results.url.value_or(""),
                        context.settings().broker.url.value_or(""),
                        transport_options(context.settings().broker.transport_options),
                        transport_options(context.settings().results.transport_options)};
    if (const auto& file = context.settings().file; !file.empty())
        native.global_args.insert(native.global_args.end(), {"-C", std::filesystem::absolute(file).string()});
    if (const auto& results = context.settings().results.url; results.is_set()) {
        try {
            broker::check_result_url(broker::with_transport_options(*results, native.result_transport));
        } catch (const UsageError& e) {
            throw UsageError(results.origin + ": " + e.what());  // where to fix it: "ccmulti.toml:2", "$CCMULTI_…"
        }
    }
    return native;
}

std::vector<std::string> node_command_line(const naming::Node& node, const NativeWorker& native) {
    return make_node_spec(node, fs::current_path(), std::chrono::seconds(1), native).argv;
}

supervisor::StopTarget make_stop_target(const naming::Node& node, const fs::path& cwd) {
    return {node.name, node_files(node, cwd).pidfile, seconds_option(node, "--stop-timeout")};
}

NodeFiles node_files(const naming::Node& node, const fs::path& cwd) {
    const fs::path base = node_cwd(node, cwd);
    return {node_file(node.pidfile(), base), node_file(node.logfile(), base)};
}

}  // namespace ccmulti::cli
