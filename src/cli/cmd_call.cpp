// call: publish a task, print its id; or with --wait, its result (exit 1 on FAILURE, "Type: message" on stderr).
// With --count N: N such tasks (each its own id, printed one a line), published pipelined over one connection
// (Broker::publish_many), so that a benchmark measures the workers rather than the client (bench/run).
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <vector>

#include "cli/broker_client.hpp"
#include "cli/output.hpp"
#include "platform/host.hpp"
#include "protocol/events.hpp"
#include "protocol/iso_time.hpp"

namespace ccmulti::cli {

namespace {

constexpr std::size_t max_count = 10'000'000;  // ids and envelopes are held in memory until sent

struct CallOptions {
    std::string task;
    std::optional<std::string> args, kwargs, countdown, eta, expires, timeout, time_limit, soft_time_limit;
    std::optional<std::string> queue;  // else the task's [tasks."name"] queue, else "celery"
    bool wait = false, ignore_result = false;
    std::size_t count = 1;
    BrokerFlag broker;
};

protocol::TimePoint seconds_from_now(double seconds) {
    return protocol::now() + std::chrono::microseconds(static_cast<long long>(seconds * 1e6));
}

// A name no worker can have registered: empty, blank, or with control characters (a pasted newline).
bool unusable_name(const std::string& name) {
    if (name.find_first_not_of(" \t") == std::string::npos) return true;
    return std::any_of(name.begin(), name.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; });
}

protocol::TaskMessage build_message(const CallOptions& o) {
    if (unusable_name(o.task))
        throw UsageError("TASK must be a task name, e.g. ccmulti.ping or tasks.add, not '" + o.task + "'");
    if (o.queue && unusable_name(*o.queue))
        throw UsageError("--queue must be a queue name, e.g. celery, not '" + *o.queue + "'");
    nlohmann::json args = o.args ? parse_json_operand(*o.args, "ARGS_JSON") : nlohmann::json::array();
    if (!args.is_array()) throw UsageError("ARGS_JSON must be a JSON array of positional arguments, e.g. '[2, 3]'");
    nlohmann::json kwargs = o.kwargs ? parse_json_operand(*o.kwargs, "--kwargs") : nlohmann::json::object();
    if (!kwargs.is_object()) throw UsageError("--kwargs must be a JSON object, e.g. '{\"x\": 1}'");
    auto message = protocol::make_message(o.task, std::move(args), std::move(kwargs));
    message.queue = o.queue.value_or("celery");
    message.ignore_result = o.ignore_result;
    if (o.countdown) message.eta = seconds_from_now(parse_seconds(*o.countdown, "--countdown"));
    if (o.eta) {
        message.eta = protocol::parse_iso8601(*o.eta);
        if (!message.eta) throw UsageError("--eta takes an ISO-8601 time (2026-01-31T12:00:00Z), not '" + *o.eta + "'");
    }
    if (o.expires) message.expires = seconds_from_now(parse_seconds(*o.expires, "--expires"));
    if (o.time_limit) message.timelimit.hard = parse_seconds(*o.time_limit, "--time-limit");
    if (o.soft_time_limit) message.timelimit.soft = parse_seconds(*o.soft_time_limit, "--soft-time-limit");
    return message;
}

// `count` copies of `first`, each with its own id (also its root id and correlation id) and delivery tag.
std::vector<protocol::TaskMessage> copies(const protocol::TaskMessage& first, std::size_t count) {
    std::vector<protocol::TaskMessage> messages;
    messages.reserve(count);
    messages.push_back(first);
    while (messages.size() < count) {
        auto& message = messages.emplace_back(first);
        message.id = protocol::new_uuid();
        message.root_id = message.id;
        message.delivery_tag = protocol::new_uuid();
    }
    return messages;
}

// Celery's task_send_sent_event: a task-sent event per message, from "gen<pid>@host" as a Python client sends
// it. The publisher's destructor waits for the broker to take them.
void send_sent_events(broker::Broker& broker, const std::vector<protocol::TaskMessage>& messages) {
    int pid = static_cast<int>(::getpid());
    std::string sender_name = "gen" + std::to_string(pid) + "@" + hostname();
    auto events = broker.events(sender_name);
    if (!events) {
        print_warning(
            "task_send_sent_event is set, but this broker carries no Celery events (they need a "
            "Redis or RabbitMQ broker): no task-sent event was sent");
        return;
    }
    protocol::EventSender sender(sender_name, pid);
    for (const auto& message : messages) events->send("task-sent", protocol::task_sent(sender, message));
    events->flush();
}

}  // namespace

void add_call_command(CLI::App& app, Context& context) {
    auto options = std::make_shared<CallOptions>();
    auto* call = app.add_subcommand("call", "Send a task; print its id, or with --wait its result");
    call->add_option("TASK", options->task, "Task name, e.g. ccmulti.ping or tasks.add")->required();
    call->add_option("ARGS_JSON", options->args, "Positional arguments as a JSON array, e.g. '[2, 3]'");
    call->add_option("--kwargs", options->kwargs, "Keyword arguments as a JSON object");
    call->add_option("-Q,--queue", options->queue,
                     "Queue to send to (default: the task's configured queue, or celery)");
    auto* countdown = call->add_option("--countdown", options->countdown, "Run no sooner than S seconds from now");
    call->add_option("--eta", options->eta, "Run no sooner than this ISO-8601 time")->excludes(countdown);
    call->add_option("--expires", options->expires, "Revoke (never run) if not started within S seconds");
    call->add_option("--time-limit", options->time_limit, "Hard time limit in seconds (the task is killed)");
    call->add_option("--soft-time-limit", options->soft_time_limit, "Soft time limit in seconds");
    call->add_flag("--ignore-result", options->ignore_result, "Ask the worker to store no result");
    auto* wait = call->add_flag("--wait", options->wait, "Wait for the result and print it as JSON");
    call->add_option("--timeout", options->timeout, "With --wait: give up after S seconds (exit 1)")->needs(wait);
    call->add_option("--count", options->count,
                     "Send N such tasks (each its own id, printed one a line), pipelined over one connection")
        ->check(CLI::Range(std::size_t{1}, max_count))
        ->excludes(wait);
    add_broker_option(*call, options->broker);
    add_result_backend_option(*call, options->broker);
    call->callback([&context, options] {
        auto message = build_message(*options);
        std::optional<std::chrono::milliseconds> timeout;  // checked before anything is published
        if (options->timeout)
            timeout =
                std::chrono::milliseconds(static_cast<long long>(parse_seconds(*options->timeout, "--timeout") * 1000));
        if (!options->queue)
            if (auto task = context.settings().tasks.find(message.task); task != context.settings().tasks.end())
                if (task->second.queue.is_set()) message.queue = *task->second.queue;
        if (options->wait && message.ignore_result) throw UsageError("--wait cannot wait for an --ignore-result task");
        auto connection = open_broker(context, options->broker);
        // A store that replies to the sender (rpc://) needs this process's queue in the message, declared first.
        if (options->wait)
            if (auto reply_to = connection.results->reply_to()) message.reply_to = *reply_to;
        connection.broker->restore_orphans();  // so a dead node does not count as a consumer
        if (connection.broker->consumers_of(message.queue).empty())
            print_warning("no running node consumes queue '" + message.queue + "': the task waits until one does");
        const bool sent_events = context.settings().task_send_sent_event.value_or(false);
        if (options->count > 1) {
            auto messages = copies(message, options->count);
            connection.broker->publish_many(messages);
            if (sent_events) send_sent_events(*connection.broker, messages);
            std::string ids;
            ids.reserve(messages.size() * (message.id.size() + 1));
            for (const auto& sent : messages) ids.append(sent.id).push_back('\n');
            std::cout << ids << std::flush;
            return;
        }
        connection.broker->publish(message);
        if (sent_events) send_sent_events(*connection.broker, {message});
        if (!options->wait) {
            std::cout << message.id << '\n' << std::flush;
            return;
        }
        auto result = connection.results->wait(message.id, timeout);
        if (!result || !protocol::is_ready(result->status)) {
            std::string state(result ? protocol::to_string(result->status) : "PENDING");
            throw Error("timed out waiting for task " + message.id + " (still " + state + ")");
        }
        if (result->status == protocol::TaskState::success) {
            std::cout << result->result.dump() << '\n' << std::flush;
            return;
        }
        std::fflush(stdout);
        std::cerr << result->exception().value_or(protocol::ExceptionInfo{}).describe() << '\n';
        context.exit = Exit::failure;
    });
}

}  // namespace ccmulti::cli
