// result: a task's state and result. UNKNOWN (no such id) is told apart from PENDING (queued, or reserved by a
// node but not started), which Celery conflates. Exit 1 for UNKNOWN, FAILURE and REVOKED.
#include <iostream>

#include "cli/broker_client.hpp"
#include "cli/output.hpp"
#include "reports/reports.hpp"

namespace ccmulti::cli {

namespace {

struct ResultOptions {
    std::string id;
    bool wait = false;
    std::optional<std::string> timeout;
    BrokerFlag broker;
};

void print_text(const protocol::ResultMeta& meta) {
    std::string state(protocol::to_string(meta.status));
    Color color = meta.status == protocol::TaskState::success   ? Color::green
                  : meta.status == protocol::TaskState::failure ? Color::red
                                                                : Color::yellow;
    std::cout << paint(state, color) << '\n';
    if (auto exception = meta.exception()) {
        std::cout << exception->describe() << '\n';
        if (meta.traceback && !meta.traceback->empty() && *meta.traceback != exception->describe())
            std::cout << '\n' << *meta.traceback << (meta.traceback->ends_with('\n') ? "" : "\n");
    } else if (meta.status == protocol::TaskState::started) {
        std::cout << "running on " << meta.result.value("hostname", std::string("?")) << " (pid "
                  << meta.result.value("pid", 0) << ")\n";
    } else {
        std::cout << meta.result.dump() << '\n';
    }
    std::cout << std::flush;
}

}  // namespace

void add_result_command(CLI::App& app, Context& context) {
    auto options = std::make_shared<ResultOptions>();
    auto* result = app.add_subcommand("result", "Show a task's state and result (UNKNOWN when no such task exists)");
    result->add_option("ID", options->id, "Task id, as `ccmulti call` printed it")->required();
    auto* wait = result->add_flag("--wait", options->wait, "Wait until the task is finished");
    result->add_option("--timeout", options->timeout, "With --wait: give up after S seconds")->needs(wait);
    result->add_flag("--json", context.json, "Machine-readable output");
    add_broker_option(*result, options->broker);
    add_result_backend_option(*result, options->broker);
    result->callback([&context, options] {
        auto connection = open_broker(context, options->broker);
        std::optional<protocol::ResultMeta> meta;
        if (options->wait) {
            std::optional<std::chrono::milliseconds> timeout;
            if (options->timeout)
                timeout = std::chrono::milliseconds(
                    static_cast<long long>(parse_seconds(*options->timeout, "--timeout") * 1000));
            // Waiting for an id nobody knows would wait for ever: say UNKNOWN at once instead.
            if (connection.results->get(options->id) || connection.broker->locate(options->id))
                meta = connection.results->wait(options->id, timeout);
        } else {
            meta = connection.results->get(options->id);
        }
        auto out = reports::result_document(meta, *connection.broker, options->id);
        if (out["status"] == "UNKNOWN" || out["status"] == "FAILURE" || out["status"] == "REVOKED")
            context.exit = Exit::failure;
        if (context.json) return print_json(out);
        if (meta) return print_text(*meta);
        if (out["status"] == "UNKNOWN") {
            std::cout << paint("UNKNOWN", Color::red) << '\n' << std::flush;
            print_error("no task " + options->id + " in " + connection.broker->url() +
                        " (never sent, or its result expired)");
            return;
        }
        std::cout << paint("PENDING", Color::yellow) << '\n'
                  << (out["reserved"].get<bool>() ? "reserved by a node from queue '" : "waiting in queue '")
                  << out["queue"].get<std::string>() << "'\n"
                  << std::flush;
    });
}

}  // namespace ccmulti::cli
