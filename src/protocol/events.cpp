#include "protocol/events.hpp"

#include <fmt/format.h>
#include <sys/utsname.h>

#include <cmath>
#include <ctime>

#include "protocol/iso_time.hpp"

namespace ccmulti::protocol {

namespace {

using nlohmann::json;

std::string event_quoted(std::string_view text) {
    return json(text).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string event_optional_quoted(const std::optional<std::string>& text) {
    return text ? event_quoted(*text) : "null";
}

std::string event_optional_time(const std::optional<TimePoint>& when) {
    return when ? event_quoted(format_iso8601(*when)) : "null";
}

// Python's time.timezone // 3600 (or altzone's in summer): hours west of UTC, rounded down.
int event_utcoffset_hours() {
    std::time_t now = std::time(nullptr);
    std::tm local{};
    ::localtime_r(&now, &local);
    return static_cast<int>(std::floor(-static_cast<double>(local.tm_gmtoff) / 3600.0));
}

std::string event_number(double value) {
    return std::isfinite(value) ? fmt::format("{}", value) : "0";
}

// Python's repr of a str: single quotes unless the text has one and no double quote.
void python_repr_string(const std::string& text, std::string& out) {
    char quote = text.find('\'') != std::string::npos && text.find('"') == std::string::npos ? '"' : '\'';
    out += quote;
    for (unsigned char c : text) {
        switch (c) {
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c == static_cast<unsigned char>(quote)) {
                    out += '\\';
                    out += static_cast<char>(c);
                } else if (c < 0x20 || c == 0x7f) {
                    out += fmt::format("\\x{:02x}", c);
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    out += quote;
}

// Iterative over nesting would be safer, but messages nest at most max_message_depth levels (decode refuses
// deeper ones), and `limit` stops the walk long before a wide value is done.
void python_repr_into(const json& value, bool as_tuple, std::size_t limit, std::string& out) {
    if (out.size() > limit) return;
    switch (value.type()) {
        case json::value_t::null:
            out += "None";
            return;
        case json::value_t::boolean:
            out += value.get<bool>() ? "True" : "False";
            return;
        case json::value_t::string:
            python_repr_string(value.get_ref<const std::string&>(), out);
            return;
        case json::value_t::array: {
            out += as_tuple ? '(' : '[';
            bool first = true;
            for (const auto& item : value) {
                if (!first) out += ", ";
                first = false;
                python_repr_into(item, false, limit, out);
                if (out.size() > limit) return;
            }
            if (as_tuple && value.size() == 1) out += ',';
            out += as_tuple ? ')' : ']';
            return;
        }
        case json::value_t::object: {
            out += '{';
            bool first = true;
            for (const auto& [key, item] : value.items()) {
                if (!first) out += ", ";
                first = false;
                python_repr_string(key, out);
                out += ": ";
                python_repr_into(item, false, limit, out);
                if (out.size() > limit) return;
            }
            out += '}';
            return;
        }
        case json::value_t::number_float: {
            double number = value.get<double>();
            if (std::isnan(number))
                out += "nan";
            else if (std::isinf(number))
                out += number > 0 ? "inf" : "-inf";
            else
                out += value.dump();
            return;
        }
        default:
            out += value.dump();
            return;
    }
}

std::string event_system_name() {
    utsname name{};
    return ::uname(&name) == 0 ? name.sysname : "Linux";
}

}  // namespace

EventSender::EventSender(std::string hostname, int pid) : hostname_(std::move(hostname)) {
    prefix_ = fmt::format("{{\"hostname\": {}, \"utcoffset\": {}, \"pid\": {}, ", event_quoted(hostname_),
                          event_utcoffset_hours(), pid);
}

std::string EventSender::event(std::string_view type, std::string_view fields) {
    std::string out;
    out.reserve(prefix_.size() + fields.size() + type.size() + 64);
    out += prefix_;
    out += "\"clock\": ";
    out += std::to_string(++clock_);
    out += ", ";
    if (!fields.empty()) {
        out += fields;
        out += ", ";
    }
    out += fmt::format("\"timestamp\": {:.6f}, \"type\": ", to_unix(now()));
    out += event_quoted(type);
    out += '}';
    return out;
}

std::string python_repr(const json& value, bool as_tuple, std::size_t limit) {
    std::string out;
    python_repr_into(value, as_tuple, limit, out);
    if (out.size() > limit) {
        out.resize(limit);
        out += "...";
    }
    return out;
}

std::string exception_repr(const ExceptionInfo& exception) {
    std::string out = exception.type.empty() ? "Exception" : exception.type;
    out += '(';
    if (!exception.message.empty()) python_repr_string(exception.message, out);
    out += ')';
    return out;
}

std::string event_routing_key(std::string_view type) {
    std::string key(type);
    for (char& c : key)
        if (c == '-') c = '.';
    return key;
}

std::string worker_event(EventSender& sender, std::string_view type, const WorkerStatus& status) {
    static const std::string sw_sys = event_quoted(event_system_name());
    static const std::string sw_ver = event_quoted(CCMULTI_VERSION);
    std::string loadavg = "[";
    for (std::size_t i = 0; i < status.loadavg.size(); ++i)
        loadavg += (i ? ", " : "") + fmt::format("{:.2f}", status.loadavg[i]);
    loadavg += ']';
    return sender.event(type, fmt::format("\"freq\": {:.1f}, \"active\": {}, \"processed\": {}, \"loadavg\": {}, "
                                          "\"sw_ident\": {}, \"sw_ver\": {}, \"sw_sys\": {}",
                                          std::isfinite(status.freq) ? status.freq : 2.0, status.active,
                                          status.processed, loadavg, event_quoted(sw_ident), sw_ver, sw_sys));
}

namespace {

// uuid, name, args, kwargs, root_id, parent_id, retries, eta, expires: what task-received and task-sent share.
std::string event_task_fields(const TaskMessage& message) {
    return fmt::format(
        "\"uuid\": {}, \"name\": {}, \"args\": {}, \"kwargs\": {}, \"root_id\": {}, \"parent_id\": {}, "
        "\"retries\": {}, \"eta\": {}, \"expires\": {}",
        event_quoted(message.id), event_quoted(message.task), event_quoted(python_repr(message.args, true)),
        event_quoted(python_repr(message.kwargs)), event_optional_quoted(message.root_id),
        event_optional_quoted(message.parent_id), message.retries, event_optional_time(message.eta),
        event_optional_time(message.expires));
}

}  // namespace

std::string task_received(EventSender& sender, const TaskMessage& message) {
    return sender.event("task-received", event_task_fields(message));
}

std::string task_started(EventSender& sender, const std::string& id) {
    return sender.event("task-started", "\"uuid\": " + event_quoted(id));
}

std::string task_succeeded(EventSender& sender, const std::string& id, const json& result, double runtime) {
    return sender.event("task-succeeded", fmt::format("\"uuid\": {}, \"result\": {}, \"runtime\": {}", event_quoted(id),
                                                      event_quoted(python_repr(result)), event_number(runtime)));
}

std::string task_failed(EventSender& sender, const std::string& id, const ExceptionInfo& exception,
                        const std::string& traceback) {
    return sender.event("task-failed",
                        fmt::format("\"uuid\": {}, \"exception\": {}, \"traceback\": {}", event_quoted(id),
                                    event_quoted(exception_repr(exception)), event_quoted(traceback)));
}

std::string task_retried(EventSender& sender, const std::string& id, const ExceptionInfo& exception,
                         const std::string& traceback) {
    return sender.event("task-retried",
                        fmt::format("\"uuid\": {}, \"exception\": {}, \"traceback\": {}", event_quoted(id),
                                    event_quoted(exception_repr(exception)), event_quoted(traceback)));
}

std::string task_revoked(EventSender& sender, const std::string& id, bool expired) {
    return sender.event("task-revoked", fmt::format("\"uuid\": {}, \"terminated\": false, \"signum\": null, "
                                                    "\"expired\": {}",
                                                    event_quoted(id), expired ? "true" : "false"));
}

std::string task_sent(EventSender& sender, const TaskMessage& message) {
    return sender.event("task-sent", event_task_fields(message) + fmt::format(", \"queue\": {}, \"exchange\": \"\", "
                                                                              "\"routing_key\": {}",
                                                                              event_quoted(message.queue),
                                                                              event_quoted(message.queue)));
}

std::string task_batch_body(const std::vector<std::string>& events) {
    std::string body = "[";
    for (std::size_t i = 0; i < events.size(); ++i) {
        if (i) body += ", ";
        body += events[i];
    }
    body += ']';
    return body;
}

std::vector<nlohmann::json> events_in(nlohmann::json body) {
    std::vector<nlohmann::json> events;
    if (body.is_object() && body.contains("type")) {
        events.push_back(std::move(body));
    } else if (body.is_array()) {  // "task.multi"
        for (auto& event : body)
            if (event.is_object() && event.contains("type")) events.push_back(std::move(event));
    }
    return events;
}

}  // namespace ccmulti::protocol
