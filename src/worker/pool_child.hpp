// The life of one pool process: read a task request, run it, write the outcome, until the node closes the
// request pipe (retirement or shutdown). It runs in a forked copy of the node, never exec'd, so it has the node's
// task registry (plugins loaded once, before the fork) and nothing else: every inherited fd but its two pipes and
// stdio is closed, and it takes no signals meant for the node.
//
//   request  {"id", "task", "args", "kwargs", "retries", "soft": seconds|null, "hard": seconds|null}
//   reply    {"id", "ok": true, "result"}  or  {"id", "ok": false, "exception": {"type", "message"},
//             "traceback", "rss_kib"}   (rss_kib on both, for max_memory_per_child)
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "tasks/execute.hpp"
#include "tasks/registry.hpp"

namespace ccmulti::worker {

inline constexpr int pool_request_fd = 3;
inline constexpr int pool_reply_fd = 4;

// Called in the child right after fork(); never returns. `title` is its process title.
[[noreturn]] void run_pool_child(const tasks::Registry& registry, const std::string& title, int requests, int replies);

// The wire forms of a task call and its outcome (shared with the node side). `report_rss`: the reply says how
// much memory the pool process uses after the task (rss_kib), for max_memory_per_child; it costs a /proc read.
nlohmann::json request_json(const TaskCall& call, std::optional<double> soft, std::optional<double> hard,
                            bool report_rss = false);
// The text of request_json(...) (what frame_text() makes of it), written directly from the message's fields:
// no copy of its arguments (protocol/json_text.hpp). The node's way; request_json is the reference.
std::string request_text(const std::string& id, const std::string& name, const nlohmann::json& args,
                         const nlohmann::json& kwargs, int retries, std::optional<double> soft,
                         std::optional<double> hard, bool report_rss = false);
nlohmann::json reply_json(const std::string& id, const tasks::TaskOutcome& outcome);
// The text of reply_json(id, outcome) (frame_text), with "rss_kib" when given: the pool process's way.
std::string reply_text(const std::string& id, const tasks::TaskOutcome& outcome,
                       std::optional<std::int64_t> rss_kib = std::nullopt);
tasks::TaskOutcome outcome_from_reply(const nlohmann::json& reply);

}  // namespace ccmulti::worker
