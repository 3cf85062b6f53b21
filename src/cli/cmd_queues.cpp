// queues: every queue with its depth, reserved messages and consuming nodes, flagging queues that have
// messages but no consumer. purge: drop a queue's waiting messages.
#include <iostream>

#include "cli/broker_client.hpp"
#include "cli/output.hpp"
#include "reports/reports.hpp"
#include "util/strings.hpp"

namespace ccmulti::cli {

void add_queue_commands(CLI::App& app, Context& context) {
    auto queues_broker = std::make_shared<BrokerFlag>();
    auto* queues = app.add_subcommand("queues", "List queues: waiting, scheduled and reserved messages, consumers");
    queues->add_flag("--json", context.json, "Machine-readable output");
    add_broker_option(*queues, *queues_broker);
    queues->callback([&context, queues_broker] {
        auto connection = open_broker(context, *queues_broker);
        auto out = reports::queues_report(*connection.broker);
        std::vector<std::string> orphaned;
        std::vector<std::vector<std::string>> rows{{"QUEUE", "READY", "SCHEDULED", "RESERVED", "CONSUMERS"}};
        for (const auto& queue : out) {
            auto consumers = queue["consumers"].get<std::vector<std::string>>();
            std::string shown = consumers.empty() ? "-" : join(consumers, ",");
            if (queue["no_consumer"].get<bool>()) {
                orphaned.push_back(queue["name"]);
                shown = paint("none (messages wait)", Color::red);
            }
            rows.push_back(
                {queue["name"], queue["ready"].dump(), queue["scheduled"].dump(), queue["reserved"].dump(), shown});
        }
        if (context.json) return print_json(out);
        if (out.empty()) {
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
