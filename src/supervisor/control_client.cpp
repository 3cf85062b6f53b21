#include "supervisor/control_client.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include "platform/unix_socket.hpp"
#include "supervisor/control_server.hpp"
#include "supervisor/group_locks.hpp"
#include "util/error.hpp"

namespace ccmulti::supervisor {

std::optional<ControlClient> ControlClient::connect(const std::filesystem::path& run_dir) {
    UniqueFd fd = connect_unix(control_socket(run_dir));
    if (!fd) return std::nullopt;
    return ControlClient(std::move(fd));
}

void ControlClient::send(nlohmann::json request) {
    request["v"] = control_protocol_version;
    std::string line = request.dump() + "\n";
    const char* p = line.data();
    std::size_t left = line.size();
    while (left > 0) {
        ssize_t n = ::send(fd_.get(), p, left, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw SystemError("cannot talk to the master", errno);
        p += n;
        left -= static_cast<std::size_t>(n);
    }
}

ControlClient::Status ControlClient::receive(nlohmann::json& message, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto newline = buffer_.find('\n');
        if (newline != std::string::npos) {
            std::string line = buffer_.substr(0, newline);
            buffer_.erase(0, newline + 1);
            try {
                message = nlohmann::json::parse(line);
            } catch (const std::exception& e) {
                throw Error("the master sent a malformed reply: " + line);
            }
            return Status::message;
        }
        auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return Status::timeout;
        pollfd entry{fd_.get(), POLLIN, 0};
        int n = ::poll(&entry, 1, static_cast<int>(left.count()));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw SystemError("poll", errno);
        if (n == 0) return Status::timeout;
        char chunk[4096];
        ssize_t got = ::recv(fd_.get(), chunk, sizeof chunk, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return Status::closed;
        buffer_.append(chunk, static_cast<std::size_t>(got));
    }
}

}  // namespace ccmulti::supervisor
