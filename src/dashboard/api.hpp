// What the dashboard shows and does, as JSON: the same documents the CLI prints with --json (reports/reports.hpp:
// one producer for both), plus the task list and the actions (restart, stop, purge). The HTTP layer
// (dashboard/server.hpp) only routes to these.
//
// Where the broker carries Celery's events (dashboard/event_monitor.hpp feeds events()), the task list and the
// nodes show what they say too: live states (STARTED, RETRY), runtimes, exceptions, heartbeats.
//
// Threading: every call opens its own connections (the broker objects are not thread-safe, and a broker that
// went away and came back is simply reached again on the next request), so calls may run on any thread.
// Nothing here shows a password: every document goes through mask_secrets.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "broker/connect.hpp"
#include "dashboard/event_state.hpp"
#include "dashboard/options.hpp"

namespace ccmulti::dashboard {

struct TaskFilter {
    std::string state;  // "FAILURE"...; empty: any
    std::string name;   // substring of the task name; empty: any
    std::string id;     // substring of the task id; a whole id not among the recent ones is looked up
    std::size_t limit = 100;
};

// An action's outcome: the HTTP status and the body.
struct Outcome {
    int status = 200;
    nlohmann::json body;
};

class Api {
public:
    explicit Api(Source source) : source_(std::move(source)) {}

    // `status --json`, each node with "heartbeat" ({"age", "processed", "active", "loadavg"}) when its events arrive.
    nlohmann::json status() const;
    nlohmann::json queues() const;                                                               // `queues --json`
    nlohmann::json inspect(const std::string& method, std::chrono::milliseconds timeout) const;  // `inspect --json`
    nlohmann::json result(const std::string& task_id) const;                                     // `result --json`
    // {"tasks":[…],"results":"…","events":EventState::summary()}: the recent results, newest first, filtered;
    // each is `result --json`, and with events also the task's latest state (STARTED before any result is
    // stored), "worker", "received", "started", "runtime", "exception". Tasks known only from events come
    // first (newest change first), then the stored results no event told about.
    nlohmann::json tasks(const TaskFilter& filter) const;
    nlohmann::json about() const;  // version, broker and result URLs (masked), run dir

    // Through the master's control socket, without waiting for the node to come back (the page follows it).
    Outcome restart_node(const std::string& node) const;
    Outcome stop_node(const std::string& node) const;
    Outcome purge_queue(const std::string& queue) const;

    const Source& source() const { return source_; }
    EventState& events() const { return events_; }

private:
    Outcome to_master(nlohmann::json request) const;
    Source source_;
    mutable EventState events_;
};

// Replaces passwords in URLs ("redis://:secret@host" -> "redis://:***@host") and the value of every "password"
// key, throughout `value`.
void mask_secrets(nlohmann::json& value);
std::string mask_url_passwords(const std::string& text);

}  // namespace ccmulti::dashboard
