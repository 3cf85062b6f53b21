#include "worker/pool_child.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <iostream>

#include "platform/fd.hpp"
#include "platform/proc_table.hpp"
#include "platform/proc_title.hpp"
#include "platform/signals.hpp"
#include "protocol/json_text.hpp"
#include "worker/frame.hpp"

namespace ccmulti::worker {

namespace {

std::optional<double> optional_seconds(const nlohmann::json& value) {
    if (value.is_number()) return value.get<double>();
    return std::nullopt;
}

std::chrono::steady_clock::time_point after(double seconds) {
    return std::chrono::steady_clock::now() +
           std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
}

// The pool process ignores the signals a terminal or `kill -TERM -PGID` sends the whole node group: a warm
// shutdown lets its running task finish, and a cold one is the node's SIGKILL.
void take_signals() {
    reset_signals_for_exec();
    std::signal(SIGINT, SIG_IGN);
    std::signal(SIGTERM, SIG_IGN);
    std::signal(SIGQUIT, SIG_IGN);
    std::signal(SIGHUP, SIG_IGN);
    std::signal(SIGUSR1, SIG_IGN);  // the soft limit signal of command tasks' process groups, not ours
    std::signal(SIGPIPE, SIG_IGN);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
}

}  // namespace

nlohmann::json request_json(const TaskCall& call, std::optional<double> soft, std::optional<double> hard,
                            bool report_rss) {
    nlohmann::json request = nlohmann::json::object();  // filled in place: see protocol::to_json(ResultMeta)
    auto& fields = request.get_ref<nlohmann::json::object_t&>();
    fields.emplace("id", call.id);
    fields.emplace("task", call.name);
    fields.emplace("args", call.args);
    fields.emplace("kwargs", call.kwargs);
    fields.emplace("retries", call.retries);
    fields.emplace("soft", soft ? nlohmann::json(*soft) : nlohmann::json());
    fields.emplace("hard", hard ? nlohmann::json(*hard) : nlohmann::json());
    if (report_rss) fields.emplace("rss", true);
    return request;
}

std::string request_text(const std::string& id, const std::string& name, const nlohmann::json& args,
                         const nlohmann::json& kwargs, int retries, std::optional<double> soft,
                         std::optional<double> hard, bool report_rss) {
    // nlohmann's key order (request_json's object is a std::map), and frame_text's handling of invalid UTF-8.
    constexpr auto errors = protocol::JsonErrors::replace;
    std::string out;
    out.reserve(128);
    out += "{\"args\":";
    protocol::append_json(out, args, errors);
    out += ",\"hard\":";
    protocol::append_json(out, hard ? nlohmann::json(*hard) : nlohmann::json(), errors);
    out += ",\"id\":";
    protocol::append_json_string(out, id, errors);
    out += ",\"kwargs\":";
    protocol::append_json(out, kwargs, errors);
    out += ",\"retries\":";
    out += std::to_string(retries);
    if (report_rss) out += ",\"rss\":true";
    out += ",\"soft\":";
    protocol::append_json(out, soft ? nlohmann::json(*soft) : nlohmann::json(), errors);
    out += ",\"task\":";
    protocol::append_json_string(out, name, errors);
    out += '}';
    return out;
}

nlohmann::json reply_json(const std::string& id, const tasks::TaskOutcome& outcome) {
    nlohmann::json reply = {{"id", id}, {"ok", outcome.ok}};
    if (outcome.ok) {
        reply["result"] = outcome.result;
    } else {
        reply["exception"] = {{"type", outcome.exception.type}, {"message", outcome.exception.message}};
        reply["traceback"] = outcome.traceback;
    }
    return reply;
}

std::string reply_text(const std::string& id, const tasks::TaskOutcome& outcome, std::optional<std::int64_t> rss_kib) {
    // nlohmann's key order (reply_json's object is a std::map), and frame_text's handling of invalid UTF-8.
    constexpr auto errors = protocol::JsonErrors::replace;
    std::string out;
    out.reserve(96);
    if (!outcome.ok) {
        out += "{\"exception\":{\"message\":";
        protocol::append_json_string(out, outcome.exception.message, errors);
        out += ",\"type\":";
        protocol::append_json_string(out, outcome.exception.type, errors);
        out += "},\"id\":";
    } else {
        out += "{\"id\":";
    }
    protocol::append_json_string(out, id, errors);
    out += outcome.ok ? ",\"ok\":true,\"result\":" : ",\"ok\":false";
    if (outcome.ok) protocol::append_json(out, outcome.result, errors);
    if (rss_kib) {
        out += ",\"rss_kib\":";
        out += std::to_string(*rss_kib);
    }
    if (!outcome.ok) {
        out += ",\"traceback\":";
        protocol::append_json_string(out, outcome.traceback, errors);
    }
    out += '}';
    return out;
}

tasks::TaskOutcome outcome_from_reply(const nlohmann::json& reply) {
    tasks::TaskOutcome outcome;
    outcome.ok = reply.value("ok", false);
    if (outcome.ok) {
        outcome.result = reply.value("result", nlohmann::json());
    } else {
        const auto& exception = reply.at("exception");
        outcome.exception =
            protocol::ExceptionInfo::of(exception.value("type", "Exception"), exception.value("message", ""));
        outcome.traceback = reply.value("traceback", "");
    }
    return outcome;
}

void run_pool_child(const tasks::Registry& registry, const std::string& title, int requests, int replies) {
    take_signals();
    // Fixed fds, then nothing else inherited: not the broker's socket or database, not the node's epoll.
    // Via fds above both targets first: either pipe may itself be fd 3 or 4.
    int high_requests = ::fcntl(requests, F_DUPFD, pool_reply_fd + 1);
    int high_replies = ::fcntl(replies, F_DUPFD, pool_reply_fd + 1);
    // dup3 with O_CLOEXEC: a program a task starts (a command task, a plugin's system()) must not inherit them.
    if (high_requests < 0 || high_replies < 0 || ::dup3(high_requests, pool_request_fd, O_CLOEXEC) < 0 ||
        ::dup3(high_replies, pool_reply_fd, O_CLOEXEC) < 0 || !close_from(pool_reply_fd + 1, fd_ceiling()))
        std::_Exit(70);
    set_proc_title(title, "ccmulti-pool");

    try {
        // Buffered: the node may send several requests at once (quick tasks), read with one read(2).
        FrameReader reader;
        for (;;) {
            auto request = reader.next();
            if (!request) {
                if (reader.read_some(pool_request_fd) == FrameReader::Fill::closed) break;
                continue;
            }
            // Moved out of the request rather than copied (value() copies).
            auto take = [&request](const char* key, nlohmann::json fallback) {
                auto it = request->find(key);
                return it == request->end() ? fallback : std::move(*it);
            };
            TaskCall call;
            call.id = request->value("id", "");
            call.name = request->value("task", "");
            call.args = take("args", nlohmann::json::array());
            call.kwargs = take("kwargs", nlohmann::json::object());
            call.retries = request->value("retries", 0);
            if (auto soft = optional_seconds(request->value("soft", nlohmann::json())))
                call.soft_deadline = after(*soft);
            if (auto hard = optional_seconds(request->value("hard", nlohmann::json())))
                call.hard_deadline = after(*hard);
            auto outcome = tasks::execute(registry, call);
            std::optional<std::int64_t> rss_kib;
            if (request->value("rss", false))
                if (auto rss = read_rss(::getpid())) rss_kib = static_cast<std::int64_t>(*rss / 1024);
            std::string text = reply_text(call.id, outcome, rss_kib);
            if (text.size() > max_frame_size) {
                // Not sent, the node would take our exit for a crash and run the task again: fail it instead.
                tasks::TaskOutcome too_large;
                too_large.exception = protocol::ExceptionInfo::of(
                    "EncodeError", "the task's result is " + std::to_string(text.size()) +
                                       " bytes, over the pool's limit of " + std::to_string(max_frame_size) + " bytes");
                too_large.traceback = too_large.exception.describe();
                text = frame_text(reply_json(call.id, too_large));
            }
            if (!write_frame_text(pool_reply_fd, text)) break;  // the node is gone
        }
    } catch (const std::exception& e) {
        std::cerr << title << ": " << e.what() << std::endl;
        std::_Exit(70);
    }
    std::cout.flush();
    std::cerr.flush();
    std::_Exit(0);
}

}  // namespace ccmulti::worker
