#include "worker/inspect.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/connect.hpp"
#include "broker/control_replies.hpp"
#include "platform/unix_socket.hpp"
#include "worker/inspect_client.hpp"
#include "worker/inspect_request.hpp"
#include "worker/worker.hpp"

namespace ccmulti::worker {

namespace {

using nlohmann::json;

std::vector<broker::ActiveTask> active_tasks(const InspectState& state, const std::vector<InspectTask>& tasks) {
    std::vector<broker::ActiveTask> out;
    for (const auto& task : tasks) out.push_back({task.message, state.node, task.started, task.acknowledged, task.pid});
    return out;
}

json stats(const InspectState& state) {
    broker::NodeStats stats;
    stats.total = state.totals;
    stats.pid = static_cast<int>(::getpid());
    stats.uptime_seconds = static_cast<long>(state.uptime.count());
    stats.concurrency = state.concurrency;
    stats.processes = state.pool_pids;
    stats.prefetch_count = static_cast<int>(state.prefetch);
    stats.soft_time_limit = state.soft_time_limit;
    stats.hard_time_limit = state.time_limit;
    stats.max_tasks_per_child = static_cast<long>(state.max_tasks_per_child);
    json reply = broker::stats_reply(stats, broker::broker_info(state.broker_url));
    if (!broker::remote_control(state.broker_url)) reply["queues"] = state.queues;
    return reply;
}

// The embedded broker's inspect socket: one short request line per connection, answered at once.
class SocketServer final : public InspectServer {
public:
    SocketServer(std::filesystem::path path, const InspectSource& source, EventLoop& loop)
        : path_(std::move(path)), source_(source), loop_(loop), listener_(listen_unix(path_)) {
        loop_.watch(listener_.get(), EPOLLIN, [this](std::uint32_t) { accept_clients(); });
    }
    ~SocketServer() override {
        for (auto& [fd, client] : clients_) loop_.unwatch(fd);
        loop_.unwatch(listener_.get());
        std::error_code ignored;
        std::filesystem::remove(path_, ignored);
    }

private:
    struct Client {
        UniqueFd fd;
        std::string buffer;
    };

    void accept_clients() {
        for (;;) {
            UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
            if (!fd) return;
            if (auto peer = peer_credentials(fd.get()); peer.uid != ::getuid() && peer.uid != 0) continue;
            int raw = fd.get();
            clients_[raw].fd = std::move(fd);
            loop_.watch(raw, EPOLLIN, [this, raw](std::uint32_t) { on_readable(raw); });
        }
    }

    void on_readable(int fd) {
        auto& client = clients_.at(fd);
        char chunk[4096];
        ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n > 0) client.buffer.append(chunk, static_cast<std::size_t>(n));
        auto newline = client.buffer.find('\n');
        if (newline == std::string::npos && n > 0 && client.buffer.size() < 65536) return;
        if (newline != std::string::npos) answer(fd, client.buffer.substr(0, newline));
        loop_.unwatch(fd);
        clients_.erase(fd);
    }

    void answer(int fd, const std::string& line) {
        json reply;
        try {
            std::string method = parse_inspect_request(line);
            auto value = inspect_reply(source_.inspect_state(), method);
            reply = value ? json{{"ok", true}, {"reply", *value}}
                          : json{{"ok", false}, {"error", "unknown inspect method '" + method + "'"}};
        } catch (const BadInspectRequest& e) {
            reply = {{"ok", false}, {"error", e.what()}};
        } catch (const json::exception& e) {
            reply = {{"ok", false}, {"error", std::string("cannot answer: ") + e.what()}};
        }
        // A reply may be larger than the socket buffer; the client is waiting for it, so block briefly.
        ::fcntl(fd, F_SETFL, 0);
        timeval timeout{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        std::string text = reply.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
        write_all(fd, text.data(), text.size());
    }

    std::filesystem::path path_;
    const InspectSource& source_;
    EventLoop& loop_;
    UniqueFd listener_;
    std::map<int, Client> clients_;
};

// The broker's mailbox (Celery's pidbox), so Python tools see the node.
class MailboxServer final : public InspectServer {
public:
    MailboxServer(broker::RemoteControl& control, const std::string& node, InspectSource& source, EventLoop& loop)
        : loop_(loop), mailbox_(control.mailbox(node, [&source](const std::string& method, const json&) {
              if (auto reply = source.control(method)) return reply;  // enable_events, disable_events
              return inspect_reply(source.inspect_state(), method);
          })) {
        loop_.watch(mailbox_->fd(), EPOLLIN, [this](std::uint32_t) { mailbox_->on_readable(); });
    }
    ~MailboxServer() override { loop_.unwatch(mailbox_->fd()); }

private:
    EventLoop& loop_;
    std::unique_ptr<broker::ControlMailbox> mailbox_;
};

}  // namespace

std::optional<json> inspect_reply(const InspectState& state, const std::string& method) {
    if (method == "ping") return json{{"ok", "pong"}};
    if (method == "active") return broker::active_reply(active_tasks(state, state.active));
    if (method == "reserved") return broker::active_reply(active_tasks(state, state.reserved));
    // Tasks with an eta stay in the broker until due (`ccmulti queues` counts them), so a node holds none.
    if (method == "scheduled") return json::array();
    if (method == "registered") return broker::registered_reply(state.registered);
    if (method == "stats") return stats(state);
    if (method == "active_queues") {
        json queues = json::array();
        for (const auto& queue : state.queues)
            queues.push_back(
                {{"name", queue}, {"exchange", {{"name", queue}, {"type", "direct"}}}, {"routing_key", queue}});
        return queues;
    }
    return std::nullopt;
}

std::filesystem::path inspect_socket_path(const std::filesystem::path& run_dir, const std::string& node, pid_t pid) {
    return run_dir / (std::string(inspect_socket_prefix) + node + "~" + std::to_string(pid) + ".sock");
}

std::optional<std::string> inspect_socket_node(const std::string& file) {
    const std::string_view prefix = inspect_socket_prefix, suffix = ".sock";
    if (!file.starts_with(prefix) || !file.ends_with(suffix) || file.size() <= prefix.size() + suffix.size())
        return std::nullopt;
    std::string node = file.substr(prefix.size(), file.size() - prefix.size() - suffix.size());
    if (auto tilde = node.rfind('~'); tilde != std::string::npos && tilde + 1 < node.size() &&
                                      node.find_first_not_of("0123456789", tilde + 1) == std::string::npos)
        node.erase(tilde);
    return node;
}

std::unique_ptr<InspectServer> start_inspect_server(const WorkerOptions& options, InspectSource& source,
                                                    EventLoop& loop) {
    if (auto control = broker::remote_control(options.broker.url))
        return std::make_unique<MailboxServer>(*control, options.name, source, loop);
    if (options.control_socket.empty()) return nullptr;
    // Sockets of nodes killed with SIGKILL would stay in the run dir for good (ours is replaced at bind anyway).
    remove_stale_inspect_sockets(options.control_socket.parent_path());
    try {
        return std::make_unique<SocketServer>(options.control_socket, source, loop);
    } catch (const Error& e) {
        spdlog::warn("{}: inspect is unavailable: {}", options.name, e.what());
        return nullptr;
    }
}

}  // namespace ccmulti::worker
