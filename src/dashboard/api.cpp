#include "dashboard/api.hpp"

#include <algorithm>
#include <map>
#include <regex>

#include "protocol/iso_time.hpp"
#include "reports/reports.hpp"
#include "supervisor/control_client.hpp"
#include "supervisor/group_locks.hpp"

namespace ccmulti::dashboard {

using nlohmann::json;

std::string mask_url_passwords(const std::string& text) {
    if (text.find("://") == std::string::npos) return text;
    static const std::regex password(R"(([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):([^@/\s]+)@)");
    return std::regex_replace(text, password, "$1:***@");
}

void mask_secrets(json& value) {
    if (value.is_string()) {
        value = mask_url_passwords(value.get_ref<const std::string&>());
    } else if (value.is_array()) {
        for (auto& item : value) mask_secrets(item);
    } else if (value.is_object()) {
        for (auto& [key, item] : value.items()) {
            if (key == "password" && !item.is_null())
                item = "***";
            else
                mask_secrets(item);
        }
    }
}

namespace {

json masked(json value) {
    mask_secrets(value);
    return value;
}

double unix_seconds() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool is_ready_state(const std::string& state) {
    return state == "SUCCESS" || state == "FAILURE" || state == "REVOKED";
}

// "ValueError('boom')" -> ("ValueError", "boom"), as a stored FAILURE's result shows it.
json exception_result(const std::string& repr) {
    auto open = repr.find('(');
    if (open == std::string::npos || repr.back() != ')') return {{"exc_type", repr}, {"exc_message", json::array()}};
    std::string message = repr.substr(open + 1, repr.size() - open - 2);
    if (message.size() >= 2 && (message.front() == '\'' || message.front() == '"') && message.back() == message.front())
        message = message.substr(1, message.size() - 2);
    return {{"exc_type", repr.substr(0, open)}, {"exc_message", json::array({message})}};
}

// A stored result's document with what the task's events add. The stored state wins once it is final.
json with_events(json document, const json& events) {
    const std::string stored = document.value("status", "");
    if (!is_ready_state(stored)) document["status"] = events["status"];
    for (const char* key : {"name", "worker", "runtime"})
        if ((!document.contains(key) || document[key].is_null()) && !events[key].is_null()) document[key] = events[key];
    for (const char* key : {"received", "started", "exception", "retries"}) document[key] = events[key];
    if (!document.contains("date_done") || document["date_done"].is_null())
        document["date_done"] =
            events["finished"].is_number()
                ? json(protocol::format_iso8601(protocol::from_unix(events["finished"].get<double>())))
                : json(nullptr);
    if (document["status"] == "FAILURE" && !events["exception"].is_null() &&
        (!document.contains("result") || document["result"].is_null()))
        document["result"] = exception_result(events["exception"].get<std::string>());
    if ((!document.contains("traceback") || document["traceback"].is_null()) && !events["traceback"].is_null())
        document["traceback"] = events["traceback"];
    if (!document.contains("args") || document["args"].is_null()) document["args"] = events["args"];
    if (!document.contains("kwargs") || document["kwargs"].is_null()) document["kwargs"] = events["kwargs"];
    return document;
}

}  // namespace

json Api::status() const {
    json status = reports::status_report(source_.run_dir).document;
    const json workers = events_.workers(unix_seconds());
    if (!workers.empty() && status.contains("nodes") && status["nodes"].is_array())
        for (auto& node : status["nodes"]) {
            auto found = workers.find(node.value("name", ""));
            if (found == workers.end()) continue;
            node["heartbeat"] = {{"age", (*found)["heartbeat_age"]},
                                 {"processed", (*found)["processed"]},
                                 {"active", (*found)["active"]},
                                 {"loadavg", (*found)["loadavg"]},
                                 {"online", (*found)["online"]}};
        }
    return masked(std::move(status));
}

json Api::queues() const {
    auto connection = broker::connect(source_.broker);
    return masked(reports::queues_report(*connection.broker));
}

json Api::inspect(const std::string& method, std::chrono::milliseconds timeout) const {
    return masked(reports::inspect_report(source_.broker.url, source_.run_dir, method, {}, timeout));
}

json Api::result(const std::string& task_id) const {
    auto connection = broker::connect(source_.broker);
    return masked(reports::result_report(connection, task_id));
}

json Api::tasks(const TaskFilter& filter) const {
    auto connection = broker::connect(source_.broker);
    // Enough to fill `limit` after filtering in most cases, bounded so a page stays cheap.
    const std::size_t scan = filter.state.empty() && filter.name.empty() && filter.id.empty()
                                 ? filter.limit
                                 : std::max<std::size_t>(filter.limit, 2000);
    auto wanted = [&](const json& task) {
        if (!filter.state.empty() && task.value("status", "") != filter.state) return false;
        const json& name = task.contains("name") ? task["name"] : json(nullptr);
        if (!filter.name.empty() &&
            (!name.is_string() || name.get<std::string>().find(filter.name) == std::string::npos))
            return false;
        return filter.id.empty() || task.value("task_id", "").find(filter.id) != std::string::npos;
    };
    json tasks = json::array();
    const auto from_events = events_.tasks();
    std::map<std::string, const json*> live;
    for (const auto& task : from_events) live[task["task_id"].get<std::string>()] = &task;
    std::vector<json> stored_only;
    std::map<std::string, json> stored;
    for (const auto& meta : connection.results->recent(live.empty() ? scan : std::max(scan, live.size()))) {
        json document = reports::result_document(meta, *connection.broker, meta.task_id);
        if (live.contains(meta.task_id))
            stored[meta.task_id] = std::move(document);
        else
            stored_only.push_back(std::move(document));
    }
    for (const auto& task : from_events) {
        if (tasks.size() >= filter.limit) break;
        const std::string id = task["task_id"].get<std::string>();
        auto found = stored.find(id);
        json document = with_events(
            found != stored.end() ? std::move(found->second) : json{{"task_id", id}, {"status", task["status"]}}, task);
        if (wanted(document)) tasks.push_back(std::move(document));
    }
    for (auto& document : stored_only) {
        if (tasks.size() >= filter.limit) break;
        if (wanted(document)) tasks.push_back(std::move(document));
    }
    // A whole id that is not among the recent results (older, or still queued): ask for it alone.
    if (tasks.empty() && filter.id.size() >= 32) {
        json one = reports::result_report(connection, filter.id);
        if (one.value("status", "") != "UNKNOWN") tasks.push_back(std::move(one));
    }
    return masked({{"tasks", std::move(tasks)},
                   {"events", events_.summary()},
                   {"results", broker::display_url(source_.broker.results_url.empty() ? source_.broker.url
                                                                                      : source_.broker.results_url)}});
}

json Api::about() const {
    return masked(
        {{"version", CCMULTI_VERSION},
         {"run_dir", source_.run_dir},
         {"broker", broker::display_url(source_.broker.url)},
         {"results",
          source_.broker.results_url.empty() ? json(nullptr) : json(broker::display_url(source_.broker.results_url))}});
}

Outcome Api::to_master(json request) const {
    auto master = supervisor::check_master(source_.run_dir);
    auto client = master.running() ? supervisor::ControlClient::connect(source_.run_dir) : std::nullopt;
    if (!client)
        return {503, {{"ok", false}, {"error", "no ccmulti master is running in " + source_.run_dir.string()}}};
    client->send(std::move(request));
    json reply;
    // "accepted", then (without wait) the final line at once.
    for (int line = 0; line < 2; ++line) {
        if (client->receive(reply, std::chrono::seconds(5)) != supervisor::ControlClient::Status::message)
            return {504,
                    {{"ok", false}, {"error", "the master (pid " + std::to_string(master.pid) + ") does not answer"}}};
        if (!reply.value("ok", true)) return {409, masked(reply)};
        if (reply.value("done", false)) break;
    }
    for (const char* key : {"not_running", "refused"})
        if (!reply.value(key, json::array()).empty()) {
            reply["ok"] = false;
            reply["error"] = std::string(key) == "refused" ? "the master refused" : "not running (or already stopping)";
            return {409, masked(reply)};
        }
    reply["ok"] = true;
    return {200, masked(reply)};
}

Outcome Api::restart_node(const std::string& node) const {
    return to_master({{"cmd", "restart"}, {"nodes", {node}}, {"all", false}, {"wait", false}});
}

Outcome Api::stop_node(const std::string& node) const {
    return to_master({{"cmd", "stop"}, {"nodes", {node}}, {"mode", "warm"}, {"wait", false}});
}

Outcome Api::purge_queue(const std::string& queue) const {
    auto connection = broker::connect(source_.broker);
    std::size_t purged = connection.broker->purge(queue);
    return {200, {{"ok", true}, {"queue", queue}, {"purged", purged}}};
}

}  // namespace ccmulti::dashboard
