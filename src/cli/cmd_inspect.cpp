// inspect: ask the running nodes what they are doing, as `celery inspect` does. Through Celery's mailbox where
// the broker has one (so Python workers answer too), on the embedded broker through the nodes' sockets in the
// run dir.
#include <iostream>

#include "cli/broker_client.hpp"
#include "cli/output.hpp"
#include "reports/reports.hpp"
#include "platform/host.hpp"

namespace ccmulti::cli {

namespace {

struct InspectOptions {
    std::string method;
    std::vector<std::string> destination;
    std::string timeout = "1";
    BrokerFlag broker;
};

std::string task_line(const nlohmann::json& task) {
    if (!task.is_object()) return task.dump();
    std::string line = task.value("name", task.value("type", "?")) + "[" + task.value("id", "?") + "]";
    if (task.contains("args")) line += " args=" + task["args"].dump();
    if (task.contains("kwargs")) line += " kwargs=" + task["kwargs"].dump();
    if (task.contains("worker_pid") && !task["worker_pid"].is_null()) line += " pid=" + task["worker_pid"].dump();
    return line;
}

void print_reply(const std::string& method, const nlohmann::json& reply) {
    if (reply.is_object() && reply.contains("error")) {
        std::cout << "    error: " << reply["error"].get<std::string>() << "\n";
    } else if (method == "ping") {
        std::cout << "    " << reply.value("ok", "pong") << "\n";
    } else if (reply.is_array()) {
        if (reply.empty()) std::cout << "    - empty -\n";
        for (const auto& item : reply)
            std::cout << "    * "
                      << (item.is_string()               ? item.get<std::string>()
                          : item.contains("routing_key") ? item.value("name", "?")
                                                         : task_line(item))
                      << "\n";
    } else {
        std::string text = reply.dump(2);
        std::string indented = "    ";
        for (char c : text) indented += c == '\n' ? std::string("\n    ") : std::string(1, c);
        std::cout << indented << "\n";
    }
}

void run(Context& context, const InspectOptions& options) {
    auto timeout =
        std::chrono::milliseconds(static_cast<long long>(parse_seconds(options.timeout, "--timeout") * 1000));
    std::vector<std::string> destination;
    for (const auto& name : options.destination)  // "w1" means w1@this-host, as Celery's -d does not, but users expect
        destination.push_back(name.find('@') == std::string::npos ? name + "@" + hostname() : name);

    auto replies = reports::inspect_report(broker_options(context, options.broker).url, context.dirs().run.path, options.method,
                                  destination, timeout);
    if (context.json) {
        print_json(replies);
    } else {
        for (const auto& [node, reply] : replies.items()) {
            bool failed = reply.is_object() && reply.contains("error");
            std::cout << "-> " << node << ": " << paint(failed ? "ERROR" : "OK", failed ? Color::red : Color::green)
                      << "\n";
            print_reply(options.method, reply);
        }
    }
    if (replies.empty()) {
        print_error("no nodes replied within " + options.timeout +
                    " s; are nodes running on this broker (ccmulti ps)? --timeout waits longer");
        context.exit = Exit::failure;
        return;
    }
    if (!context.json) std::cout << replies.size() << (replies.size() == 1 ? " node" : " nodes") << " online.\n";
    for (const auto& node : destination)
        if (!replies.contains(node)) {
            print_error(node + " did not reply");
            context.exit = Exit::failure;
        }
}

}  // namespace

void add_inspect_command(CLI::App& app, Context& context) {
    auto options = std::make_shared<InspectOptions>();
    auto* inspect = app.add_subcommand("inspect", "Ask running nodes: ping, active, reserved, stats, registered, ...");
    inspect->add_option("METHOD", options->method, "What to ask")->required()->check(CLI::IsMember(reports::inspect_methods));
    inspect->add_option("-d,--destination", options->destination, "Only these nodes (w1 or w1@host); repeatable")
        ->delimiter(',');
    inspect->add_option("-t,--timeout", options->timeout, "Seconds to wait for replies")->capture_default_str();
    inspect->add_flag("--json", context.json, "Print {node: reply} as JSON");
    add_broker_option(*inspect, options->broker);
    inspect->callback([&context, options] { run(context, *options); });
}

}  // namespace ccmulti::cli
