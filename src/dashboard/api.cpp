#include "dashboard/api.hpp"

#include <algorithm>
#include <regex>

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

}  // namespace

json Api::status() const {
    return masked(reports::status_report(source_.run_dir).document);
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
    json tasks = json::array();
    for (const auto& meta : connection.results->recent(scan)) {
        if (tasks.size() >= filter.limit) break;
        if (!filter.state.empty() && protocol::to_string(meta.status) != filter.state) continue;
        if (!filter.name.empty() && meta.name.value_or("").find(filter.name) == std::string::npos) continue;
        if (!filter.id.empty() && meta.task_id.find(filter.id) == std::string::npos) continue;
        tasks.push_back(reports::result_document(meta, *connection.broker, meta.task_id));
    }
    // A whole id that is not among the recent results (older, or still queued): ask for it alone.
    if (tasks.empty() && filter.id.size() >= 32) {
        json one = reports::result_report(connection, filter.id);
        if (one.value("status", "") != "UNKNOWN") tasks.push_back(std::move(one));
    }
    return masked({{"tasks", std::move(tasks)},
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
