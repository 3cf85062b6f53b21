#include "worker/inspect_client.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include "broker/control_replies.hpp"
#include "platform/unix_socket.hpp"
#include "util/error.hpp"
#include "worker/inspect.hpp"

namespace ccmulti::worker {

namespace {

std::optional<nlohmann::json> ask(const std::filesystem::path& socket, const std::string& method,
                                  std::chrono::milliseconds timeout) {
    UniqueFd fd = connect_unix(socket);
    if (!fd) return std::nullopt;
    timeval limit{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    std::string request = nlohmann::json{{"method", method}}.dump() + "\n";
    if (!write_all(fd.get(), request.data(), request.size())) return std::nullopt;
    std::string text;
    char chunk[16384];
    for (;;) {
        ssize_t n = ::read(fd.get(), chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        text.append(chunk, static_cast<std::size_t>(n));
    }
    auto reply = nlohmann::json::parse(text, nullptr, false);
    if (!reply.is_object()) return std::nullopt;
    if (!reply.value("ok", false)) return nlohmann::json{{"error", reply.value("error", "no reply")}};
    return reply.value("reply", nlohmann::json());
}

bool stale_socket(const std::filesystem::path& socket) {
    struct stat st {};
    if (::lstat(socket.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_uid != ::geteuid()) return false;
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        try {
            if (connect_unix(socket) || errno != ECONNREFUSED) return false;
        } catch (const Error&) {
            return false;
        }
    }
    return true;
}

bool inspect_socket_name(const std::string& file) {
    return inspect_socket_node(file).has_value();
}

}  // namespace

std::size_t remove_stale_inspect_sockets(const std::filesystem::path& run_dir) {
    std::size_t removed = 0;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(run_dir, error))
        if (inspect_socket_name(entry.path().filename().string()) && stale_socket(entry.path()))
            removed += ::unlink(entry.path().c_str()) == 0 ? 1 : 0;
    return removed;
}

std::map<std::string, nlohmann::json> ask_local_nodes(const std::filesystem::path& run_dir, const std::string& method,
                                                      const std::vector<std::string>& destination,
                                                      std::chrono::milliseconds timeout) {
    std::map<std::string, nlohmann::json> replies;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(run_dir, error)) {
        auto node = inspect_socket_node(entry.path().filename().string());
        if (!node) continue;
        if (!destination.empty() && std::find(destination.begin(), destination.end(), *node) == destination.end())
            continue;
        if (auto reply = ask(entry.path(), method, timeout))
            broker::add_node_reply(replies, *node, std::move(*reply));  // two processes of one name: one node
        else if (stale_socket(entry.path()))
            ::unlink(entry.path().c_str());  // its node died without removing it
    }
    return replies;
}

}  // namespace ccmulti::worker
