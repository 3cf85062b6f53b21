// A message that cannot be understood. Carries the task id when it could be read, so the worker can store a
// FAILURE for it instead of dropping it silently.
#pragma once

#include <string>

#include "util/error.hpp"

namespace ccmulti::protocol {

class ProtocolError : public Error {
public:
    explicit ProtocolError(const std::string& message, std::string task_id = "")
        : Error(message), task_id_(std::move(task_id)) {}
    const std::string& task_id() const noexcept { return task_id_; }

private:
    std::string task_id_;
};

}  // namespace ccmulti::protocol
