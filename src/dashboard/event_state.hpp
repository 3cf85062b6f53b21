// What the dashboard knows from Celery's events (broker.hpp, EventReceiver), as Flower keeps it: per task the
// latest state, name, node, when it was received, started and finished, its runtime and exception; per node its
// last heartbeat, tasks processed and active, load average; and counters over every event seen, for /metrics
// (tasks by name and state, a runtime histogram by name). Bounded: the oldest tasks are forgotten past
// max_tasks, task names past max_names count as "other", so a flood of tasks cannot grow the dashboard.
//
// Events may arrive late or out of order (each node batches its own): a task's state only moves forward in time
// (by the event's timestamp), and never from a finished state back to a running one, but every event fills in
// the fields it carries.
//
// Threading: the event monitor's thread applies events, HTTP handlers read; every member takes the lock.
#pragma once

#include <array>
#include <cstdint>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace ccmulti::dashboard {

// Counters derived from events, for /metrics.
struct EventMetrics {
    static constexpr std::array<double, 14> buckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                       1,     2.5,  5,     10,   30,  60,   300};
    struct Histogram {
        std::array<std::uint64_t, buckets.size()> counts{};  // per bucket, not cumulative
        std::uint64_t count = 0;                             // including those above the last bucket
        double sum = 0;
    };
    bool receiving = false;                                       // a transport with events, subscribed now
    std::uint64_t events = 0;                                     // every event received
    std::map<std::pair<std::string, std::string>, double> tasks;  // (name, state) -> events
    std::map<std::string, Histogram> runtime;                     // name -> runtimes of successful tasks
    std::map<std::string, double> heartbeat_age;                  // node -> seconds since its last event
};

class EventState {
public:
    static constexpr std::size_t max_tasks = 10000;
    static constexpr std::size_t max_names = 500;

    // Takes one event (a JSON object with "type"); `now` is the dashboard's clock (unix seconds), used for
    // heartbeat ages so that nodes with skewed clocks still show live.
    void apply(const nlohmann::json& event, double now);

    // Where events come from: `available` false when the transport carries none (then `why` says so),
    // `problem` while they cannot be received (Redis down, still subscribing).
    void set_source(bool available, const std::string& why);
    void set_problem(std::optional<std::string> problem);

    // {"available", "receiving", "why", "events", "tasks", "workers"}: for the page's note.
    nlohmann::json summary() const;
    // The tasks known, newest change first: {"task_id", "status", "name", "worker", "received", "started",
    // "date_done", "runtime", "exception", "traceback", "args", "kwargs", "retries"} (null where unknown).
    std::vector<nlohmann::json> tasks() const;
    std::optional<nlohmann::json> task(const std::string& id) const;
    // node -> {"heartbeat_age", "processed", "active", "loadavg", "online", "freq"}.
    nlohmann::json workers(double now) const;
    EventMetrics metrics(double now) const;

private:
    struct Task {
        std::string id, name, state, worker, args, kwargs, exception, traceback;
        std::optional<double> received, started, finished, runtime;
        long retries = 0;
        double updated = 0;  // the timestamp of the event that set `state`
        std::list<std::string>::iterator order;
    };
    struct Worker {
        double last_seen = 0;  // dashboard clock
        long processed = 0, active = 0;
        double freq = 2;
        nlohmann::json loadavg = nlohmann::json::array();
        bool online = true;
    };
    void apply_task(const nlohmann::json& event, const std::string& type);
    static nlohmann::json document(const Task& task);
    std::string name_label(const std::string& name);

    mutable std::mutex mutex_;
    bool available_ = true;
    std::string why_;
    std::optional<std::string> problem_ = std::string("not started");
    std::uint64_t events_ = 0;
    std::unordered_map<std::string, Task> tasks_;
    std::list<std::string> order_;  // task ids, most recently changed first
    std::map<std::string, Worker> workers_;
    std::map<std::pair<std::string, std::string>, double> counts_;
    std::map<std::string, EventMetrics::Histogram> runtime_;
    std::set<std::string> names_;  // the labels in use, at most max_names
};

}  // namespace ccmulti::dashboard
