#include "dashboard/event_state.hpp"

#include <algorithm>

namespace ccmulti::dashboard {

using nlohmann::json;

namespace {

// Celery's state for each task event (celery/events/state.py).
const char* state_of(const std::string& type) {
    if (type == "task-sent") return "PENDING";
    if (type == "task-received") return "RECEIVED";
    if (type == "task-started") return "STARTED";
    if (type == "task-succeeded") return "SUCCESS";
    if (type == "task-failed") return "FAILURE";
    if (type == "task-retried") return "RETRY";
    if (type == "task-revoked") return "REVOKED";
    if (type == "task-rejected") return "REJECTED";
    return nullptr;
}

bool finished(const std::string& state) {
    return state == "SUCCESS" || state == "FAILURE" || state == "REVOKED" || state == "REJECTED";
}

std::string text_of(const json& event, const char* key) {
    auto found = event.find(key);
    if (found == event.end() || found->is_null()) return {};
    return found->is_string() ? found->get<std::string>() : found->dump();
}

std::optional<double> number_of(const json& event, const char* key) {
    auto found = event.find(key);
    if (found == event.end() || !found->is_number()) return std::nullopt;
    return found->get<double>();
}

json or_null(const std::string& text) {
    return text.empty() ? json(nullptr) : json(text);
}

json or_null(const std::optional<double>& value) {
    return value ? json(*value) : json(nullptr);
}

}  // namespace

void EventState::set_source(bool available, const std::string& why) {
    std::lock_guard lock(mutex_);
    available_ = available;
    why_ = why;
}

void EventState::set_problem(std::optional<std::string> problem) {
    std::lock_guard lock(mutex_);
    problem_ = std::move(problem);
}

std::string EventState::name_label(const std::string& name) {
    if (name.empty()) return "unknown";
    if (names_.contains(name)) return name;
    if (names_.size() >= max_names) return "other";
    names_.insert(name);
    return name;
}

void EventState::apply(const json& event, double now) {
    if (!event.is_object()) return;
    const std::string type = text_of(event, "type");
    std::lock_guard lock(mutex_);
    ++events_;
    // task-sent comes from a client ("gen<pid>@host"), not a node.
    if (const std::string node = text_of(event, "hostname"); !node.empty() && type != "task-sent") {
        // Any event of a node proves it alive (Flower does the same); worker events say more.
        Worker& worker = workers_[node];
        worker.last_seen = now;
        if (type.starts_with("worker-")) {
            worker.online = type != "worker-offline";
            if (auto processed = number_of(event, "processed")) worker.processed = static_cast<long>(*processed);
            if (auto active = number_of(event, "active")) worker.active = static_cast<long>(*active);
            if (auto freq = number_of(event, "freq")) worker.freq = *freq;
            if (event.contains("loadavg")) worker.loadavg = event["loadavg"];
        } else {
            worker.online = true;
        }
    }
    if (type.starts_with("task-")) apply_task(event, type);
}

void EventState::apply_task(const json& event, const std::string& type) {
    const std::string id = text_of(event, "uuid");
    const char* state = state_of(type);
    if (id.empty() || !state) return;
    const double timestamp = number_of(event, "timestamp").value_or(0);

    auto [found, fresh] = tasks_.try_emplace(id);
    Task& task = found->second;
    if (fresh) {
        task.id = id;
        order_.push_front(id);
        task.order = order_.begin();
        if (tasks_.size() > max_tasks) {
            tasks_.erase(order_.back());
            order_.pop_back();
        }
    }
    if (task.name.empty()) task.name = text_of(event, "name");
    if (type == "task-received" || type == "task-sent") {
        task.args = text_of(event, "args");
        task.kwargs = text_of(event, "kwargs");
        if (auto retries = number_of(event, "retries")) task.retries = static_cast<long>(*retries);
    }
    if (type != "task-sent") {
        if (std::string node = text_of(event, "hostname"); !node.empty()) task.worker = node;
    }
    // A finished task keeps its times (a duplicate or late event does not move them); a retried one is not.
    if (type == "task-received" && !finished(task.state)) task.received = timestamp;
    if (type == "task-started" && !finished(task.state)) task.started = timestamp;
    if (finished(state)) task.finished = timestamp;
    if (auto runtime = number_of(event, "runtime")) task.runtime = *runtime;
    if (type == "task-failed" || type == "task-retried") {
        task.exception = text_of(event, "exception");
        task.traceback = text_of(event, "traceback");
    }
    // The state moves forward in time, and never out of a finished one (a late "started" after "succeeded").
    const bool newer = task.state.empty() || timestamp >= task.updated;
    if ((newer && !(finished(task.state) && !finished(state))) || (finished(state) && !finished(task.state))) {
        task.state = state;
        task.updated = std::max(task.updated, timestamp);
        order_.splice(order_.begin(), order_, task.order);
    }

    const std::string label = name_label(task.name);
    counts_[{label, state}] += 1;
    if (type == "task-succeeded" && task.runtime) {
        auto& histogram = runtime_[label];
        for (std::size_t i = 0; i < EventMetrics::buckets.size(); ++i)
            if (*task.runtime <= EventMetrics::buckets[i]) {
                ++histogram.counts[i];
                break;
            }
        ++histogram.count;
        histogram.sum += *task.runtime;
    }
}

json EventState::document(const Task& task) {
    json out = {{"task_id", task.id},
                {"status", task.state},
                {"name", or_null(task.name)},
                {"worker", or_null(task.worker)},
                {"received", or_null(task.received)},
                {"started", or_null(task.started)},
                {"finished", or_null(task.finished)},
                {"runtime", or_null(task.runtime)},
                {"exception", or_null(task.exception)},
                {"traceback", or_null(task.traceback)},
                {"args", or_null(task.args)},
                {"kwargs", or_null(task.kwargs)},
                {"retries", task.retries}};
    return out;
}

json EventState::summary() const {
    std::lock_guard lock(mutex_);
    return {{"available", available_},
            {"receiving", available_ && !problem_},
            {"why", available_ ? json(problem_ ? json(*problem_) : json(nullptr)) : json(why_)},
            {"events", events_},
            {"tasks", tasks_.size()},
            {"workers", workers_.size()}};
}

std::vector<json> EventState::tasks() const {
    std::lock_guard lock(mutex_);
    std::vector<json> out;
    out.reserve(order_.size());
    for (const auto& id : order_) out.push_back(document(tasks_.at(id)));
    return out;
}

std::optional<json> EventState::task(const std::string& id) const {
    std::lock_guard lock(mutex_);
    auto found = tasks_.find(id);
    if (found == tasks_.end()) return std::nullopt;
    return document(found->second);
}

json EventState::workers(double now) const {
    std::lock_guard lock(mutex_);
    json out = json::object();
    for (const auto& [node, worker] : workers_)
        out[node] = {{"heartbeat_age", std::max(0.0, now - worker.last_seen)},
                     {"processed", worker.processed},
                     {"active", worker.active},
                     {"loadavg", worker.loadavg},
                     {"online", worker.online},
                     {"freq", worker.freq}};
    return out;
}

EventMetrics EventState::metrics(double now) const {
    std::lock_guard lock(mutex_);
    EventMetrics out;
    out.receiving = available_ && !problem_;
    out.events = events_;
    out.tasks = counts_;
    out.runtime = runtime_;
    for (const auto& [node, worker] : workers_)
        if (worker.online) out.heartbeat_age[node] = std::max(0.0, now - worker.last_seen);
    return out;
}

}  // namespace ccmulti::dashboard
