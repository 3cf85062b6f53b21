// The JSON documents the CLI's listings print with --json (status, queues, inspect, result), as functions of
// their inputs: `ccmulti status --json` and the dashboard's /api/status are one producer, so their shapes cannot
// drift apart. Each function gathers (asks the master, the broker or the nodes) and returns the document; the
// command decides on exit codes and text output, the dashboard on HTTP status codes.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "broker/connect.hpp"

namespace ccmulti::reports {

// `status --json`: {"master":{...},"nodes":[...],"ready":bool} from the master of `run_dir` (only the nodes
// named in `only`, all when empty), or {"master":null,"nodes":[],"run_dir","error","masters_elsewhere"} when no
// master answers. `unknown` receives the names of `only` that are no node of the master.
struct StatusReport {
    nlohmann::json document;
    bool master = false;  // a master answered
    bool ready = false;   // it did, and every node shown is ready
    std::vector<std::string> unknown;
    std::string error;  // why no master answered (also in document["error"])
};
StatusReport status_report(const std::filesystem::path& run_dir, const std::vector<std::string>& only = {});

// `queues --json`: [{"name","ready","scheduled","reserved","consumers":[...],"no_consumer":bool}], after
// returning dead consumers' messages to their queues.
nlohmann::json queues_report(broker::Broker& broker);

// `inspect METHOD --json`: {node: reply}. On Redis through Celery's mailbox, on the embedded broker through the
// nodes' sockets in `run_dir`. `destination` names are full ("w1@host").
nlohmann::json inspect_report(const std::string& broker_url, const std::filesystem::path& run_dir,
                              const std::string& method, const std::vector<std::string>& destination,
                              std::chrono::milliseconds timeout);
inline const std::vector<std::string> inspect_methods = {"ping",  "active",     "reserved",     "scheduled",
                                                         "stats", "registered", "active_queues"};

// `result ID --json`: the stored result `meta` with "task_id", else {"task_id","status":"PENDING","queue",
// "reserved"} for a queued message, else {"task_id","status":"UNKNOWN"}.
nlohmann::json result_document(const std::optional<protocol::ResultMeta>& meta, broker::Broker& broker,
                               const std::string& task_id);
// The same for the result stored now (no waiting).
inline nlohmann::json result_report(broker::Connection& connection, const std::string& task_id) {
    return result_document(connection.results->get(task_id), *connection.broker, task_id);
}

}  // namespace ccmulti::reports
