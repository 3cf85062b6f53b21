// The CLI's end of the master's control socket (protocol: supervisor/control_server.hpp).
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "platform/fd.hpp"

namespace ccmulti::supervisor {

class ControlClient {
public:
    // nullopt when no master listens in `run_dir`.
    static std::optional<ControlClient> connect(const std::filesystem::path& run_dir);

    void send(nlohmann::json request);  // adds "v"
    enum class Status { message, timeout, closed };
    // The next JSON line within `timeout`. Throws Error for a malformed line.
    Status receive(nlohmann::json& message, std::chrono::milliseconds timeout);

private:
    explicit ControlClient(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;
    std::string buffer_;
};

}  // namespace ccmulti::supervisor
