// What `ccmulti start` tells the user, as events the master emits while its nodes come up. A foreground
// master prints them itself; a daemonized master writes them as JSON lines into the pipe the waiting
// `ccmulti start` reads, which prints the very same lines. The events:
//   {"event":"ready",  "node":"w1@host", "pid":1234, "log":"/path/w1.log", "how":"READY=1" | "up 1.0s"}
//   {"event":"failed", "node":"w1@host", "error":"exited with code 3 before it was ready",
//                      "log":"/path/w1.log", "log_tail":["last", "lines"]}
//   {"event":"not_ready", "node":"w1@host", "pid":1234, "error":"not ready after 60.0s", "log":…, "log_tail":[…]}
//                      (its start_timeout passed; the master keeps it, it may become ready later)
//   {"event":"done",   "ok":true, "not_ready":false, "master_pid":1200}          (always last)
#pragma once

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ccmulti::supervisor {

// Prints one event the way `start` shows it: ready lines on stdout, failures (with the node's last log
// lines) on stderr. Returns false for "done" with ok=false, true otherwise.
bool print_start_event(const nlohmann::json& event);

// The last `lines` lines of `file` written after byte `from` (what the node itself wrote this time).
std::vector<std::string> log_tail(const std::filesystem::path& file, std::uintmax_t from, std::size_t lines = 10);

}  // namespace ccmulti::supervisor
