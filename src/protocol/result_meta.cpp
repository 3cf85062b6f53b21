#include "protocol/result_meta.hpp"

#include <array>
#include <utility>

#include "protocol/json_fields.hpp"
#include "protocol/json_text.hpp"
#include "protocol/protocol_error.hpp"

namespace ccmulti::protocol {

using nlohmann::json;

namespace {

constexpr std::array<std::pair<TaskState, std::string_view>, 7> state_names{{
    {TaskState::unknown, "UNKNOWN"},
    {TaskState::pending, "PENDING"},
    {TaskState::started, "STARTED"},
    {TaskState::success, "SUCCESS"},
    {TaskState::failure, "FAILURE"},
    {TaskState::retry, "RETRY"},
    {TaskState::revoked, "REVOKED"},
}};

constexpr std::array<std::string_view, 7> celery_exceptions{
    "NotRegistered", "TaskRevokedError", "Retry", "Ignore", "Reject", "MaxRetriesExceededError", "TaskError",
};

ResultMeta ready(const std::string& task_id, TaskState state) {
    ResultMeta meta;
    meta.task_id = task_id;
    meta.status = state;
    meta.date_done = now();
    return meta;
}

}  // namespace

std::string_view to_string(TaskState state) {
    for (const auto& [value, name] : state_names)
        if (value == state) return name;
    return "UNKNOWN";
}

std::optional<TaskState> parse_state(std::string_view name) {
    for (const auto& [value, text] : state_names)
        if (text == name) return value;
    return std::nullopt;
}

bool is_ready(TaskState state) {
    return state == TaskState::success || state == TaskState::failure || state == TaskState::revoked;
}

ExceptionInfo ExceptionInfo::of(std::string type, std::string message) {
    std::string module = "builtins";
    auto known = [&type](const auto& names) {
        for (auto name : names)
            if (name == type) return true;
        return false;
    };
    if (auto dot = type.rfind('.'); dot != std::string::npos) {
        module = type.substr(0, dot);
        type = type.substr(dot + 1);
    } else if (known(celery_exceptions)) {
        module = "celery.exceptions";
    } else if (type == "TimeLimitExceeded" || type == "SoftTimeLimitExceeded" || type == "WorkerLostError") {
        module = "billiard.exceptions";
    }
    // Anything else stays "builtins": Python finds the standard names there and makes a class for the rest.
    return {std::move(type), std::move(message), std::move(module)};
}

std::string ExceptionInfo::describe() const {
    return message.empty() ? type : type + ": " + message;
}

json to_json(const ExceptionInfo& exception) {
    return {{"exc_type", exception.type},
            {"exc_message", json::array({exception.message})},
            {"exc_module", exception.module}};
}

ExceptionInfo exception_from_json(const json& value) {
    ExceptionInfo exception;
    if (!value.is_object())
        return {"Exception", value.is_string() ? value.get<std::string>() : value.dump(), "builtins"};
    if (auto type = value.find("exc_type"); type != value.end() && type->is_string()) exception.type = *type;
    if (auto module = value.find("exc_module"); module != value.end() && module->is_string())
        exception.module = *module;
    if (auto message = value.find("exc_message"); message != value.end()) {
        if (message->is_string()) {
            exception.message = *message;
        } else if (message->is_array()) {
            // Python builds the exception as cls(*exc_message); one string argument is the usual case.
            for (std::size_t i = 0; i < message->size(); ++i) {
                if (i) exception.message += ", ";
                const json& part = (*message)[i];
                exception.message += part.is_string() ? part.get<std::string>() : part.dump();
            }
        } else if (!message->is_null()) {
            exception.message = message->dump();
        }
    }
    return exception;
}

std::optional<ExceptionInfo> ResultMeta::exception() const {
    if (status != TaskState::failure && status != TaskState::retry && status != TaskState::revoked) return std::nullopt;
    return exception_from_json(result);
}

json to_json(const ResultMeta& meta) {
    // Filled in place: a nested initializer list copies every value twice, which a node storing thousands of
    // results a second notices.
    json out = json::object();
    auto& fields = out.get_ref<json::object_t&>();
    fields.emplace("status", to_string(meta.status));
    fields.emplace("result", meta.result);
    fields.emplace("traceback", or_null(meta.traceback));
    fields.emplace("children", meta.children);
    fields.emplace("date_done", meta.date_done ? json(format_iso8601(*meta.date_done)) : json(nullptr));
    fields.emplace("task_id", meta.task_id);
    if (meta.group_id) fields.emplace("group_id", *meta.group_id);
    if (meta.name) fields.emplace("name", *meta.name);
    if (meta.args) fields.emplace("args", *meta.args);
    if (meta.kwargs) fields.emplace("kwargs", *meta.kwargs);
    if (meta.worker) fields.emplace("worker", *meta.worker);
    if (meta.retries) fields.emplace("retries", *meta.retries);
    if (meta.queue) fields.emplace("queue", *meta.queue);
    return out;
}

std::string to_json_text(const ResultMeta& meta) {
    // The keys in nlohmann's (std::map) order, so the text is the same as to_json(meta).dump().
    std::string out;
    out.reserve(256);
    auto key = [&out](std::string_view name) {
        out += out.empty() ? "{\"" : ",\"";
        out += name;
        out += "\":";
    };
    auto optional_string = [&](std::string_view name, const std::optional<std::string>& value) {
        if (!value) return;
        key(name);
        append_json_string(out, *value);
    };
    if (meta.args) {
        key("args");
        append_json(out, *meta.args);
    }
    key("children");
    append_json(out, meta.children);
    key("date_done");
    if (meta.date_done)
        append_json_string(out, format_iso8601(*meta.date_done));
    else
        out += "null";
    optional_string("group_id", meta.group_id);
    if (meta.kwargs) {
        key("kwargs");
        append_json(out, *meta.kwargs);
    }
    optional_string("name", meta.name);
    optional_string("queue", meta.queue);
    key("result");
    append_json(out, meta.result);
    if (meta.retries) {
        key("retries");
        out += std::to_string(*meta.retries);
    }
    key("status");
    append_json_string(out, to_string(meta.status));
    key("task_id");
    append_json_string(out, meta.task_id);
    key("traceback");
    if (meta.traceback)
        append_json_string(out, *meta.traceback);
    else
        out += "null";
    optional_string("worker", meta.worker);
    out += '}';
    return out;
}

ResultMeta result_from_json(const json& value) {
    if (!value.is_object() || !value.contains("status") || !value["status"].is_string())
        throw ProtocolError("stored result is not a result object");
    ResultMeta meta;
    auto state = parse_state(value["status"].get<std::string>());
    if (!state) throw ProtocolError("stored result has unknown status " + value["status"].dump());
    meta.status = *state;
    meta.task_id = value.value("task_id", "");
    meta.result = value.value("result", json(nullptr));
    auto string_field = [&value](const char* key) -> std::optional<std::string> {
        auto it = value.find(key);
        if (it == value.end() || !it->is_string()) return std::nullopt;
        return it->get<std::string>();
    };
    meta.traceback = string_field("traceback");
    if (auto date = string_field("date_done")) meta.date_done = parse_iso8601(*date);
    if (auto children = value.find("children"); children != value.end() && children->is_array())
        meta.children = *children;
    meta.group_id = string_field("group_id");
    meta.name = string_field("name");
    meta.worker = string_field("worker");
    meta.queue = string_field("queue");
    if (auto args = value.find("args"); args != value.end()) meta.args = *args;
    if (auto kwargs = value.find("kwargs"); kwargs != value.end()) meta.kwargs = *kwargs;
    if (auto retries = value.find("retries"); retries != value.end() && retries->is_number_integer())
        meta.retries = retries->get<int>();
    return meta;
}

ResultMeta started_result(const std::string& task_id, int pid, const std::string& hostname) {
    ResultMeta meta;
    meta.task_id = task_id;
    meta.status = TaskState::started;
    meta.result = {{"pid", pid}, {"hostname", hostname}};
    return meta;
}

ResultMeta success_result(const std::string& task_id, json value) {
    ResultMeta meta = ready(task_id, TaskState::success);
    meta.result = std::move(value);
    return meta;
}

ResultMeta failure_result(const std::string& task_id, const ExceptionInfo& exception, std::string traceback) {
    ResultMeta meta = ready(task_id, TaskState::failure);
    meta.result = to_json(exception);
    meta.traceback = std::move(traceback);
    return meta;
}

ResultMeta retry_result(const std::string& task_id, const ExceptionInfo& exception, std::string traceback) {
    ResultMeta meta;
    meta.task_id = task_id;
    meta.status = TaskState::retry;
    meta.result = to_json(exception);
    meta.traceback = std::move(traceback);
    return meta;
}

ResultMeta revoked_result(const std::string& task_id, const std::string& reason) {
    ResultMeta meta = ready(task_id, TaskState::revoked);
    meta.result = to_json(ExceptionInfo{"TaskRevokedError", reason, "celery.exceptions"});
    return meta;
}

}  // namespace ccmulti::protocol
