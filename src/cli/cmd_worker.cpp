// worker: one native node in the foreground. `start` runs it for every node without --exec or -A (through the
// node shim, with the node's options); it also runs by hand, e.g. under a debugger or another supervisor.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "cli/broker_client.hpp"
#include "cli/output.hpp"
#include "platform/host.hpp"
#include "tasks/builtins.hpp"
#include "tasks/command_task.hpp"
#include "tasks/plugin_loader.hpp"
#include "util/strings.hpp"
#include "worker/inspect.hpp"
#include "worker/worker.hpp"

namespace ccmulti::cli {

namespace {

struct WorkerFlags {
    std::string name;
    std::optional<std::string> queues, loglevel, time_limit, soft_time_limit;
    std::optional<int> concurrency, prefetch_multiplier;
    std::optional<std::int64_t> max_tasks_per_child, max_memory_per_child;
    std::vector<std::string> plugins;
    bool task_events = false, without_heartbeat = false;
    BrokerFlag broker;
};

spdlog::level::level_enum log_level(const std::string& name) {
    std::string upper;
    for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (upper == "DEBUG") return spdlog::level::debug;
    if (upper == "INFO") return spdlog::level::info;
    if (upper == "WARNING" || upper == "WARN") return spdlog::level::warn;
    if (upper == "ERROR") return spdlog::level::err;
    if (upper == "CRITICAL" || upper == "FATAL") return spdlog::level::critical;
    throw UsageError("-l/--loglevel takes DEBUG, INFO, WARNING, ERROR or CRITICAL, not '" + name + "'");
}

// Celery's log line shape, so log tooling (and Celery users) read ccmulti's logs the same way.
void setup_logging(const std::string& level) {
    auto logger = spdlog::stderr_color_mt("worker");
    logger->set_pattern("[%Y-%m-%d %H:%M:%S,%e: %^%L%$/MainProcess] %v");
    logger->set_level(log_level(level));
    logger->flush_on(spdlog::level::trace);  // every line reaches the log file, even before a SIGKILL
    spdlog::set_default_logger(logger);
}

// The node's full name: "w1" → "w1@host", "%h" expanded; Celery's default is celery@host.
std::string node_name(const std::string& given) {
    std::string host = hostname();
    std::string name = given.empty() ? "celery@%h" : given;
    for (auto at = name.find("%h"); at != std::string::npos; at = name.find("%h", at + host.size()))
        name.replace(at, 2, host);
    if (name.find('@') == std::string::npos) name += "@" + host;
    return name;
}

void add_configured_tasks(tasks::Registry& registry, worker::WorkerOptions& options, const config::Settings& settings,
                          const std::filesystem::path& workdir) {
    std::vector<std::string> plugins;
    for (const auto& [name, task] : settings.tasks) {
        if (task.command.is_set()) {
            std::vector<std::string> argv = task.command->argv;
            if (task.command->shell) argv = {"/bin/sh", "-c", task.command->argv.empty() ? "" : task.command->argv[0]};
            registry.add(tasks::command_task(name, argv, workdir));
        }
        if (task.plugin.is_set() && std::find(plugins.begin(), plugins.end(), *task.plugin) == plugins.end())
            plugins.push_back(*task.plugin);
        worker::TaskPolicy& policy = options.policies[name];
        if (task.time_limit.is_set()) policy.time_limit = *task.time_limit;
        if (task.soft_time_limit.is_set()) policy.soft_time_limit = *task.soft_time_limit;
        if (task.acks_late.is_set()) policy.acks_late = *task.acks_late;
        if (task.ignore_result.is_set()) policy.ignore_result = *task.ignore_result;
    }
    for (const auto& plugin : plugins) tasks::load_plugin(registry, workdir / plugin);
}

void run(Context& context, const WorkerFlags& flags) {
    worker::WorkerOptions options;
    options.name = node_name(flags.name);
    if (flags.queues) {
        options.queues = split(*flags.queues, ',');
        for (const auto& queue : options.queues)
            if (queue.empty() || queue.find(' ') != std::string::npos)
                throw UsageError("-Q/--queues takes comma-separated queue names, not '" + *flags.queues + "'");
    }
    long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
    options.concurrency = flags.concurrency.value_or(cpus > 0 ? static_cast<int>(cpus) : 1);
    if (flags.prefetch_multiplier) options.prefetch_multiplier = *flags.prefetch_multiplier;
    if (flags.time_limit) options.time_limit = parse_seconds(*flags.time_limit, "--time-limit");
    if (flags.soft_time_limit) options.soft_time_limit = parse_seconds(*flags.soft_time_limit, "--soft-time-limit");
    options.max_tasks_per_child = flags.max_tasks_per_child;
    options.max_memory_per_child = flags.max_memory_per_child;
    options.broker = broker_options(context, flags.broker);
    options.task_events = flags.task_events || context.settings().worker_send_task_events.value_or(false);
    options.worker_events = !flags.without_heartbeat;
    Dirs dirs = context.dirs();
    if (!broker::remote_control(options.broker.url)) {  // no mailbox: nodes answer inspect on a socket
        ensure_private_dir(dirs.run);
        options.control_socket = worker::inspect_socket_path(dirs.run.path, options.name, ::getpid());
    }

    setup_logging(flags.loglevel.value_or("INFO"));
    tasks::Registry registry;
    tasks::add_builtin_tasks(registry);
    add_configured_tasks(registry, options, context.settings(), context.workdir());
    for (const auto& plugin : flags.plugins) tasks::load_plugin(registry, plugin);
    spdlog::info("{}: {} task(s) registered: {}", options.name, registry.names().size(), join(registry.names(), ", "));

    context.exit = static_cast<Exit>(worker::run_worker(options, registry));
}

}  // namespace

void add_worker_command(CLI::App& app, Context& context) {
    auto flags = std::make_shared<WorkerFlags>();
    auto* worker = app.add_subcommand("worker", "Run one native worker node in the foreground (what start runs)");
    worker->add_option("-n,--hostname", flags->name, "Node name, e.g. w1@%h (default celery@%h)");
    worker->add_option("-Q,--queues", flags->queues, "Queues to consume, comma-separated (default celery)");
    worker->add_option("-c,--concurrency", flags->concurrency, "Pool processes (default: the number of CPUs)")
        ->check(CLI::Range(1, 1024));
    worker->add_option("-l,--loglevel", flags->loglevel, "DEBUG, INFO, WARNING, ERROR or CRITICAL (default INFO)");
    worker
        ->add_option("--prefetch-multiplier", flags->prefetch_multiplier,
                     "Reserve at most this many tasks per pool process (default 4)")
        ->check(CLI::Range(1, 1000));
    worker->add_option("--time-limit", flags->time_limit, "Hard time limit of every task, seconds");
    worker->add_option("--soft-time-limit", flags->soft_time_limit, "Soft time limit of every task, seconds");
    worker
        ->add_option("--max-tasks-per-child", flags->max_tasks_per_child,
                     "Replace a pool process after this many tasks")
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
    worker
        ->add_option("--max-memory-per-child", flags->max_memory_per_child,
                     "Replace a pool process whose resident memory exceeds this many KiB after a task")
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
    worker->add_option("--plugin", flags->plugins, "C++ task plugin (.so) to load; repeatable");
    worker->add_flag("-E,--task-events", flags->task_events,
                     "Send Celery task events (celery events, Flower); Redis or RabbitMQ broker. Also "
                     "worker_send_task_events in the configuration");
    worker->add_flag("--without-heartbeat", flags->without_heartbeat,
                     "Send no worker events (worker-online, -heartbeat, -offline), as Celery's option");
    add_broker_option(*worker, flags->broker);
    add_result_backend_option(*worker, flags->broker);
    worker->callback([&context, flags] { run(context, *flags); });
}

}  // namespace ccmulti::cli
