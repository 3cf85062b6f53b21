// Celery's events, the stream `celery events`, Flower and other monitors watch: what each one says, field for field
// as a Python worker (celery/worker/request.py, worker/heartbeat.py) and client (app/amqp.py) send them, captured
// from Debian's celery 5.2 on Redis. Pure: each function returns one event as JSON object text, which an
// EventPublisher (broker/broker.hpp) sends; building text directly (not a JSON tree) keeps a node's per-task
// cost small.
//
// Every event carries: hostname (the node, or "gen<pid>@host" for a client), utcoffset (hours west of UTC, as
// Python's time.timezone // 3600), pid, clock (a Lamport clock the sender increments per event), timestamp
// (Unix seconds) and type. Task events add uuid; task-received/task-sent the task's name, args and kwargs as
// Python reprs ("(1, 2)", "{'x': 1}"), root_id, parent_id, retries, eta and expires (ISO-8601 or null).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "protocol/result_meta.hpp"
#include "protocol/task_message.hpp"

namespace ccmulti::protocol {

// Who sends, and its Lamport clock.
class EventSender {
public:
    EventSender(std::string hostname, int pid);

    const std::string& hostname() const noexcept { return hostname_; }
    long long clock() const noexcept { return clock_; }

    // {"hostname", "utcoffset", "pid", "clock", <fields>, "timestamp", "type"}: `fields` is the text between the
    // braces of the event's own fields (`"uuid": "…", "runtime": 0.1`), or empty.
    std::string event(std::string_view type, std::string_view fields);

private:
    std::string hostname_;  // as a JSON string, quoted
    std::string prefix_;    // "{\"hostname\": …, \"utcoffset\": N, \"pid\": N, "
    long long clock_ = 0;
};

// What a worker-online/heartbeat/offline event tells about the node.
struct WorkerStatus {
    double freq = 2.0;   // seconds between heartbeats
    long active = 0;     // tasks running now
    long processed = 0;  // tasks finished since the node started
    std::vector<double> loadavg;
};

inline constexpr double heartbeat_interval_seconds = 2.0;  // Celery's worker_heartbeat default
inline constexpr const char* sw_ident = "ccmulti";

std::string worker_event(EventSender& sender, std::string_view type, const WorkerStatus& status);

std::string task_received(EventSender& sender, const TaskMessage& message);
std::string task_started(EventSender& sender, const std::string& id);
std::string task_succeeded(EventSender& sender, const std::string& id, const nlohmann::json& result, double runtime);
std::string task_failed(EventSender& sender, const std::string& id, const ExceptionInfo& exception,
                        const std::string& traceback);
std::string task_retried(EventSender& sender, const std::string& id, const ExceptionInfo& exception,
                         const std::string& traceback);
std::string task_revoked(EventSender& sender, const std::string& id, bool expired);
// A client's event for a message it published (Celery's task_send_sent_event).
std::string task_sent(EventSender& sender, const TaskMessage& message);

// Python's repr of a JSON value (None, True, 'text', [1, 2], {'k': v}); `as_tuple` writes an array as a tuple,
// as Celery shows positional arguments. Cut to `limit` characters with "..." (Celery's saferepr does so too).
std::string python_repr(const nlohmann::json& value, bool as_tuple = false, std::size_t limit = 1024);
// "ValueError('boom')", as Celery's safe_repr of an exception.
std::string exception_repr(const ExceptionInfo& exception);

// The routing key of an event type: "worker-heartbeat" → "worker.heartbeat"; a batch of task events goes as
// "task.multi" (a list body), as the Python worker sends them from its event loop.
std::string event_routing_key(std::string_view type);
inline constexpr const char* task_batch_routing_key = "task.multi";
inline constexpr const char* event_exchange = "celeryev";

// The body of one "task.multi" message: task events (JSON objects) as one JSON array, as Celery batches them.
std::string task_batch_body(const std::vector<std::string>& events);
// The events one received body carries: the body itself when it is an event, each event of a "task.multi" array;
// nothing else (not an event, or not JSON).
std::vector<nlohmann::json> events_in(nlohmann::json body);

}  // namespace ccmulti::protocol
