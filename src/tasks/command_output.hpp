// What a finished command means for its command task (tasks/command_task.hpp states the rules): its stdout as
// the JSON result, or the failure its exit, its signal and its last stderr line describe. A pure function of
// what the command left behind, so it is unit-tested and fuzzed (tests/fuzz/command_output_fuzz.cpp) without
// running anything.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tasks/command_runner.hpp"

namespace ccmulti::tasks {

// Deepest nesting of arrays and objects a result may have: the reply to the node and the result backend write
// JSON recursively, and a command printing 100000 '[' would otherwise overflow the pool process's stack.
inline constexpr std::size_t max_result_depth = 256;

// The result, or throws ccmulti::TaskError (CommandError, TimeLimitExceeded, SoftTimeLimitExceeded, or the
// exception named by the last stderr line). `argv` only names the command in messages.
nlohmann::json command_result(const CommandRun& run, const std::vector<std::string>& argv);

// The (type, message) of the last non-empty line of `stderr_text` when it looks like a Python exception line:
// "ValueError: boom", "myapp.errors.Oops: x", or a bare "KeyboardInterrupt"-style name ending in Error,
// Exception, Exit or Interrupt.
std::optional<std::pair<std::string, std::string>> parse_exception_line(const std::string& stderr_text);

}  // namespace ccmulti::tasks
