// Command tasks from the configuration: `[tasks."tasks.add"] command = ["python3", "tasks/add.py"]`.
// The call goes to the command's stdin as one JSON object {"id", "task", "args", "kwargs", "retries"}.
//   exit 0        stdout parsed as JSON is the result (empty: null; not JSON: CommandError)
//   exit non-zero FAILURE; type and message from the last stderr line when it reads `TypeName: message` (what
//                 an uncaught Python exception prints), else CommandError with the exit status; the whole
//                 stderr is the traceback. A last line `Retry: in 5s` asks for a retry (ccmulti::TaskRetry)
//   soft limit    the group gets SIGUSR1; dying of it is SoftTimeLimitExceeded
//   hard limit    the group is killed: TimeLimitExceeded
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tasks/command_output.hpp"  // parse_exception_line
#include "tasks/registry.hpp"

namespace ccmulti::tasks {

// `cwd`: where the command runs (relative argv paths resolve there); empty inherits the worker's.
Task command_task(const std::string& name, std::vector<std::string> argv, std::filesystem::path cwd = {});

}  // namespace ccmulti::tasks
