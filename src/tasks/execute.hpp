// Running one task call and turning whatever happens into a result a worker can store: the return value, or
// the exception (a TaskError's type and message, any other C++ exception's type name and what(), NotRegistered
// for an unknown name). Never throws.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "protocol/result_meta.hpp"
#include "tasks/registry.hpp"

namespace ccmulti::tasks {

struct TaskOutcome {
    bool ok = false;
    nlohmann::json result;              // when ok
    protocol::ExceptionInfo exception;  // when not ok
    std::string traceback;              // when not ok: the command's stderr, or a one-line description
};

TaskOutcome execute(const Registry& registry, const TaskCall& call);

}  // namespace ccmulti::tasks
