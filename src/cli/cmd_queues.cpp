// queues: every queue with its depth, reserved messages and consuming nodes, flagging queues that have
// messages but no consumer. purge: drop a queue's waiting messages.
#include <iostream>

#include "cli/broker_client.hpp"
#include "cli/output.hpp"
#include "util/strings.hpp"

namespace ccmulti::cli {

void add_queue_commands(CLI::App& app, Context& context) {
    auto queues_broker = std::make_shared<BrokerFlag>();
    auto* queues = app.add_subcommand("queues", "List queues: waiting, scheduled and reserved messages, consumers");
    queues->add_flag("--json", context.json, "Machine-readable output");
    add_broker_option(*queues, *queues_broker);
    queues->callback([&context, queues_broker] {
        auto connection = open_broker(context, *queues_broker);
        connection.broker->restore_orphans();  // dead nodes are neither consumers nor holders of messages
        auto stats = connection.broker->queue_stats();
        std::vector<std::string> orphaned;
        nlohmann::json out = nlohmann::json::array();
        std::vector<std::vector<std::string>> rows{{"QUEUE", "READY", "SCHEDULED", "RESERVED", "CONSUMERS"}};
        for (const auto& queue : stats) {
            bool no_consumer = queue.consumers.empty() && queue.ready + queue.scheduled > 0;
            if (no_consumer) orphaned.push_back(queue.name);
            out.push_back({{"name", queue.name},
                           {"ready", queue.ready},
                           {"scheduled", queue.scheduled},
                           {"reserved", queue.reserved},
                           {"consumers", queue.consumers},
                           {"no_consumer", no_consumer}});
            std::string consumers = queue.consumers.empty() ? "-" : join(queue.consumers, ",");
            if (no_consumer) consumers = paint("none (messages wait)", Color::red);
            rows.push_back({queue.name, std::to_string(queue.ready), std::to_string(queue.scheduled),
                            std::to_string(queue.reserved), consumers});
        }
        if (context.json) return print_json(out);
        if (stats.empty()) {
            std::cout << "no queues in " << connection.broker->url() << '\n';
            return;
        }
        print_table(rows);
        if (!orphaned.empty())
            print_warning("no running node consumes " + join(orphaned, ", ") + ": their messages will not run");
    });

    auto purge_options = std::make_shared<std::pair<std::string, BrokerFlag>>();
    auto* purge = app.add_subcommand("purge", "Delete a queue's waiting messages (reserved ones still finish)");
    purge->add_option("QUEUE", purge_options->first, "Queue name")->required();
    add_broker_option(*purge, purge_options->second);
    purge->callback([&context, purge_options] {
        auto connection = open_broker(context, purge_options->second);
        std::size_t purged = connection.broker->purge(purge_options->first);
        std::cout << "purged " << purged << " message" << (purged == 1 ? "" : "s") << " from '" << purge_options->first
                  << "'\n"
                  << std::flush;
    });
}

}  // namespace ccmulti::cli
