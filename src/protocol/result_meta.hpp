// Task results as Celery's JSON result backend stores them (celery-protocol.md §3):
//   {"status": "SUCCESS", "result": 4, "traceback": null, "children": [], "date_done": "...", "task_id": "..."}
// A failure's "result" is the exception: {"exc_type": "ValueError", "exc_message": ["boom"],
// "exc_module": "builtins"}. Pure functions, no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "protocol/iso_time.hpp"

namespace ccmulti::protocol {

// UNKNOWN is ccmulti's own: no result and no queued message has that id. Celery reports PENDING for both, which
// hides typos; ccmulti keeps PENDING for "queued, not started".
enum class TaskState { unknown, pending, started, success, failure, retry, revoked };

std::string_view to_string(TaskState state);  // "SUCCESS", ...
std::optional<TaskState> parse_state(std::string_view name);
bool is_ready(TaskState state);  // SUCCESS, FAILURE, REVOKED: the task will not change any more

// A task's exception, in Celery's serialized form.
struct ExceptionInfo {
    std::string type;     // "ValueError"
    std::string message;  // "boom"
    std::string module;   // "builtins"

    // Guesses the module Python would find `type` in: builtins for standard exceptions, celery/billiard for
    // theirs, the prefix of a dotted name ("myapp.errors.Oops"), else "builtins" (Python then makes a class).
    static ExceptionInfo of(std::string type, std::string message);
    std::string describe() const;  // "ValueError: boom"
    bool operator==(const ExceptionInfo&) const = default;
};

nlohmann::json to_json(const ExceptionInfo& exception);
ExceptionInfo exception_from_json(const nlohmann::json& value);  // tolerant: exc_message may be a list or string

struct ResultMeta {
    std::string task_id;
    TaskState status = TaskState::pending;
    nlohmann::json result;                 // the return value, the exception, or STARTED's {pid, hostname}
    std::optional<std::string> traceback;  // FAILURE/RETRY
    std::optional<TimePoint> date_done;    // set for ready states
    nlohmann::json children = nlohmann::json::array();
    std::optional<std::string> group_id;
    // result_extended fields, written when known.
    std::optional<std::string> name, worker, queue;
    std::optional<nlohmann::json> args, kwargs;
    std::optional<int> retries;
    // Not part of the result: where a reply-queue backend (rpc://) sends it, the task message's reply_to (a store
    // keyed by task id ignores it). Never written by to_json, never read back.
    std::string reply_to;

    std::optional<ExceptionInfo> exception() const;  // for FAILURE/RETRY/REVOKED
    bool operator==(const ResultMeta&) const = default;
};

nlohmann::json to_json(const ResultMeta& meta);
// The same as to_json(meta).dump(), written directly (protocol/json_text.hpp): what a node stores per task.
std::string to_json_text(const ResultMeta& meta);
ResultMeta result_from_json(const nlohmann::json& value);  // throws ProtocolError when not a result

// Constructors for the states a worker stores.
ResultMeta started_result(const std::string& task_id, int pid, const std::string& hostname);
ResultMeta success_result(const std::string& task_id, nlohmann::json value);
ResultMeta failure_result(const std::string& task_id, const ExceptionInfo& exception, std::string traceback);
ResultMeta retry_result(const std::string& task_id, const ExceptionInfo& exception, std::string traceback);
ResultMeta revoked_result(const std::string& task_id, const std::string& reason);  // "revoked", "expired"

}  // namespace ccmulti::protocol
