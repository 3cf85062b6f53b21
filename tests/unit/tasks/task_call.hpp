// A TaskCall for the task tests: id "id", no retries.
#pragma once

#include <string>

#include <ccmulti/task.hpp>

namespace ccmulti::tasks::test_support {

inline TaskCall task_call(const std::string& name, nlohmann::json args = nlohmann::json::array(),
                          nlohmann::json kwargs = nlohmann::json::object()) {
    TaskCall c;
    c.id = "id";
    c.name = name;
    c.args = std::move(args);
    c.kwargs = std::move(kwargs);
    return c;
}

}  // namespace ccmulti::tasks::test_support
