#include "reports/reports.hpp"

#include <algorithm>

#include "supervisor/control_client.hpp"
#include "supervisor/group_locks.hpp"
#include "worker/inspect_client.hpp"

namespace ccmulti::reports {

using nlohmann::json;

namespace {

StatusReport no_master_report(const std::filesystem::path& run_dir, const std::string& why) {
    StatusReport report;
    report.error = why;
    std::vector<std::string> elsewhere;
    for (const auto& dir : supervisor::running_master_dirs(run_dir)) elsewhere.push_back(dir.string());
    report.document = {{"master", nullptr},
                       {"nodes", json::array()},
                       {"run_dir", run_dir},
                       {"error", why},
                       {"masters_elsewhere", elsewhere}};
    return report;
}

}  // namespace

StatusReport status_report(const std::filesystem::path& run_dir, const std::vector<std::string>& only) {
    auto master = supervisor::check_master(run_dir);
    if (!master.running()) {
        std::string why = "no ccmulti master is running in " + run_dir.string();
        if (master.state == PidCheck::State::stale) why += " (stale master.pid: " + master.reason + ")";
        return no_master_report(run_dir, why);
    }
    auto client = supervisor::ControlClient::connect(run_dir);
    if (!client)
        return no_master_report(
            run_dir, "the master (pid " + std::to_string(master.pid) + ") does not listen on its control socket");
    client->send({{"cmd", "status"}});
    json reply;
    if (client->receive(reply, std::chrono::seconds(5)) != supervisor::ControlClient::Status::message ||
        !reply.value("ok", false))
        return no_master_report(run_dir, "the master (pid " + std::to_string(master.pid) + ") does not answer");
    StatusReport report;
    report.master = true;
    report.ready = true;
    json nodes = json::array();
    for (const auto& node : reply["nodes"]) {
        if (!only.empty() && std::find(only.begin(), only.end(), node.value("name", "")) == only.end()) continue;
        if (node.value("state", "") != "ready") report.ready = false;
        nodes.push_back(node);
    }
    for (const auto& name : only)
        if (std::none_of(nodes.begin(), nodes.end(), [&](const json& n) { return n.value("name", "") == name; })) {
            report.ready = false;
            report.unknown.push_back(name);
        }
    reply.erase("ok");
    reply["nodes"] = std::move(nodes);
    reply["ready"] = report.ready;
    report.document = std::move(reply);
    return report;
}

json queues_report(broker::Broker& broker) {
    broker.restore_orphans();  // dead nodes are neither consumers nor holders of messages
    json out = json::array();
    for (const auto& queue : broker.queue_stats()) {
        bool no_consumer = queue.consumers.empty() && queue.ready + queue.scheduled > 0;
        out.push_back({{"name", queue.name},
                       {"ready", queue.ready},
                       {"scheduled", queue.scheduled},
                       {"reserved", queue.reserved},
                       {"consumers", queue.consumers},
                       {"no_consumer", no_consumer}});
    }
    return out;
}

json inspect_report(const std::string& broker_url, const std::filesystem::path& run_dir, const std::string& method,
                    const std::vector<std::string>& destination, std::chrono::milliseconds timeout) {
    std::map<std::string, json> replies;
    if (auto control = broker::remote_control(broker_url))
        replies = control->broadcast(method, destination, timeout);
    else
        replies = worker::ask_local_nodes(run_dir, method, destination, timeout);
    json out = json::object();
    for (auto& [node, reply] : replies) out[node] = std::move(reply);
    return out;
}

json result_document(const std::optional<protocol::ResultMeta>& meta, broker::Broker& broker,
                     const std::string& task_id) {
    if (meta) {
        auto out = protocol::to_json(*meta);
        out["task_id"] = task_id;
        return out;
    }
    auto location = broker.locate(task_id);
    json out = {{"task_id", task_id}, {"status", location ? "PENDING" : "UNKNOWN"}};
    if (location) {
        out["queue"] = location->queue;
        out["reserved"] = location->reserved;
    }
    return out;
}

}  // namespace ccmulti::reports
