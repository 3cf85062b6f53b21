#include "supervisor/control_server.hpp"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "platform/unix_socket.hpp"
#include "supervisor/control_request.hpp"
#include "util/error.hpp"

namespace ccmulti::supervisor {

using nlohmann::json;

struct ControlServer::Client {
    UniqueFd fd;
    pid_t pid = 0;  // the peer, for log lines
    std::string in, out;
    std::chrono::steady_clock::time_point last_activity = std::chrono::steady_clock::now();
    EventLoop::TimerId idle_timer = 0;
    bool close_when_flushed = false;
    bool broken = false;
    int subscription = 0;
    std::string refusal;  // a peer we do not serve: its first request gets this error
    std::set<std::string> waiting;
    json stopped = json::array(), not_running = json::array(), failed = json::array();
};

ControlServer::ControlServer(EventLoop& loop, MasterControl& master, std::filesystem::path path,
                             std::shared_ptr<spdlog::logger> log)
    : loop_(loop), master_(master), path_(std::move(path)), log_(std::move(log)), listener_(listen_unix(path_)) {
    loop_.watch(listener_.get(), EPOLLIN, [this](std::uint32_t) { accept_clients(); });
}

ControlServer::~ControlServer() {
    for (auto& [fd, client] : clients_) {
        if (client->subscription) master_.unsubscribe(client->subscription);
        loop_.cancel(client->idle_timer);
        loop_.unwatch(fd);
    }
    loop_.unwatch(listener_.get());
    ::unlink(path_.c_str());
}

void ControlServer::accept_clients() {
    for (;;) {
        int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return;  // EAGAIN, or out of fds (logged by nobody: the next accept retries)
        }
        UniqueFd owned(fd);
        auto refuse = [&](const std::string& error) {
            // Best effort, never blocking: the socket buffer of a fresh connection has room for one line.
            // "busy": the client may fall back (`ccmulti stop` signals from the pid files) or try again.
            std::string line = json{{"ok", false}, {"busy", true}, {"error", error}}.dump() + "\n";
            ssize_t ignored = ::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)ignored;
        };
        auto cred = peer_credentials(fd);
        if (clients_.size() >= max_clients) {
            log_->warn("control socket: {} clients connected already; refused pid {}", clients_.size(), cred.pid);
            refuse("too many clients connected; try again");
            continue;
        }
        auto client = std::make_unique<Client>();
        client->fd = std::move(owned);
        client->pid = cred.pid;
        if (cred.uid != ::geteuid() && cred.uid != 0) {
            // Answered (not just closed) so the user learns why; but only after reading the request, since
            // closing a socket with unread data resets it and the peer would lose the answer.
            log_->warn("control socket: refused a connection from uid {} (pid {})", cred.uid, cred.pid);
            client->refusal = "permission denied: uid " + std::to_string(cred.uid) +
                              " may not control this master (uid " + std::to_string(::geteuid()) +
                              "); run ccmulti as that user or root";
        }
        clients_[fd] = std::move(client);
        arm_idle_timer(fd);
        loop_.watch(fd, EPOLLIN, [this, fd](std::uint32_t events) {
            auto it = clients_.find(fd);
            if (it == clients_.end()) return;
            if (events & EPOLLOUT) on_writable(*it->second);
            if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(*it->second);
            settle(fd);
        });
    }
}

void ControlServer::on_readable(Client& client) {
    const int fd = client.fd.get();
    char buffer[4096];
    for (;;) {
        ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n <= 0) {  // EOF or error: the client went away; stop requests it made still run
            client.broken = true;
            return;
        }
        client.last_activity = std::chrono::steady_clock::now();
        client.in.append(buffer, static_cast<std::size_t>(n));
        // Only a line still without its newline counts: whole lines are handled below, before the next read.
        if (client.in.size() > max_request_line && client.in.find('\n') == std::string::npos) {
            // Nothing more is read from it: an answer, best effort, and the connection closes.
            std::string line =
                json{{"ok", false},
                     {"error", "bad request: request line too long (over " + std::to_string(max_request_line / 1024) + " KiB)"}}
                    .dump() +
                "\n";
            ssize_t ignored = ::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)ignored;
            drop(client, "sent a request line over " + std::to_string(max_request_line / 1024) + " KiB");
            return;
        }
        if (client.in.find('\n') != std::string::npos) break;  // handle it before reading more
    }
    std::size_t newline;
    while (!client.broken && (newline = client.in.find('\n')) != std::string::npos) {
        std::string line = client.in.substr(0, newline);
        client.in.erase(0, newline + 1);
        if (!line.empty()) handle(client, line);
    }
}

void ControlServer::handle(Client& client, const std::string& line) {
    client.last_activity = std::chrono::steady_clock::now();  // a backlog of requests is not idleness
    if (!client.refusal.empty()) {
        send(client, {{"ok", false}, {"error", client.refusal}});
        client.close_when_flushed = true;
        client.in.clear();
        return;
    }
    // Whatever a client sends, the master answers and carries on: a wrong type in a field is a bad request.
    try {
        dispatch(client, line);
    } catch (const std::exception& e) {
        send(client, {{"ok", false}, {"error", std::string("bad request: ") + e.what()}});
        client.close_when_flushed = true;
    }
}

void ControlServer::dispatch(Client& client, const std::string& line) {
    ControlRequest request;
    try {
        request = parse_control_request(line);
    } catch (const BadControlRequest& e) {
        send(client, {{"ok", false}, {"error", e.what()}});
        client.close_when_flushed = e.closes();
        return;
    }
    const std::string& cmd = request.cmd;
    if (cmd == "restart") {
        handle_restart(client, request);
        return;
    }
    if (cmd == "add") {
        handle_add(client, request);
        return;
    }
    if (cmd == "reload") {
        handle_reload(client, request);
        return;
    }
    if (cmd == "ping") {
        send(client, {{"ok", true}, {"v", control_protocol_version}, {"pid", ::getpid()}});
        return;
    }
    if (cmd == "list" || cmd == "status") {
        json reply = master_.describe();
        reply["ok"] = true;
        send(client, reply);
        return;
    }
    if (cmd != "stop") {
        send(client, {{"ok", false}, {"error", "unknown command '" + cmd + "'"}});
        return;
    }
    const bool wait = request.wait;
    auto result = master_.stop(request.nodes, request.mode, request.timeout);
    const char* mode_name = request.mode == StopMode::cold ? "cold" : request.mode == StopMode::kill ? "kill" : "warm";
    log_->info("control: stop ({}) {} by request", mode_name,
               result.stopping.empty() ? std::string("nothing") : std::to_string(result.stopping.size()) + " node(s)");
    send(client, {{"event", "accepted"}, {"stopping", result.stopping}, {"not_running", result.not_running}});
    for (const auto& name : result.not_running) client.not_running.push_back(name);
    if (!wait) {
        send(client,
             {{"ok", true}, {"done", true}, {"stopping", result.stopping}, {"not_running", result.not_running}});
        client.close_when_flushed = true;
        return;
    }
    for (const auto& name : result.stopping)
        if (!master_.is_gone(name)) client.waiting.insert(name);
    const int fd = client.fd.get();
    client.subscription = master_.subscribe([this, fd](const json& event) {
        auto it = clients_.find(fd);
        if (it == clients_.end()) return;
        Client& c = *it->second;
        const std::string node = event.value("node", "");
        if (!c.waiting.count(node)) return;
        send(c, event);
        const std::string kind = event.value("event", "");
        if (kind == "gone") {
            c.stopped.push_back(
                {{"node", node}, {"status", event.value("status", "")}, {"seconds", event.value("seconds", 0.0)}});
            c.waiting.erase(node);
        } else if (kind == "stuck") {
            c.failed.push_back({{"node", node}, {"error", event.value("error", "")}});
            c.waiting.erase(node);
        }
        finish_if_done(c);
        settle(fd);
    });
    finish_if_done(client);
}

void ControlServer::handle_restart(Client& client, const ControlRequest& request) {
    const bool wait = request.wait;
    auto result = master_.restart(request.nodes, request.all, request.specs);
    send(client, {{"event", "accepted"},
                  {"job", result.job},
                  {"restarting", result.restarting},
                  {"not_running", result.not_running},
                  {"refused", result.refused}});
    if (!result.job || !wait) {
        send(client, {{"ok", true},
                      {"done", true},
                      {"restarted", json::array()},
                      {"failed", json::array()},
                      {"skipped", json::array()},
                      {"not_running", result.not_running}});
        client.close_when_flushed = true;
        return;
    }
    relay_job(client, result.job, "restart_done", {{"not_running", result.not_running}});
}

// The events of job `job` to the client, until `done_event`: that one is the final line ("done": true, plus
// `extra`), and the connection closes after it.
void ControlServer::relay_job(Client& client, int job, const std::string& done_event, const json& extra) {
    const int fd = client.fd.get();
    client.subscription = master_.subscribe([this, fd, job, done_event, extra](const json& event) {
        auto it = clients_.find(fd);
        if (it == clients_.end() || event.value("job", 0) != job) return;
        Client& c = *it->second;
        if (event.value("event", "") != done_event) {
            send(c, event);
        } else {
            master_.unsubscribe(c.subscription);
            c.subscription = 0;
            json done = event;
            done.erase("event");
            done["done"] = true;
            done.update(extra);
            send(c, done);
            c.close_when_flushed = true;
        }
        settle(fd);
    });
}

void ControlServer::handle_reload(Client& client, const ControlRequest& request) {
    // The job's events only begin from the loop, after this reply and the subscription.
    const bool wait = request.wait;
    auto result = master_.reload(request.nodes, "requested by pid " + std::to_string(client.pid),
                                 request.all ? MasterControl::ReloadKind::everything
                                             : MasterControl::ReloadKind::configuration);
    send(client, {{"event", "accepted"}, {"job", result.job}});
    if (!wait) {
        send(client, {{"ok", true}, {"done", true}, {"job", result.job}});
        client.close_when_flushed = true;
        return;
    }
    relay_job(client, result.job, "reload_done", json::object());
}

void ControlServer::handle_add(Client& client, const ControlRequest& request) {
    auto result = master_.add(request.specs);
    send(client, {{"event", "accepted"}, {"starting", result.starting}, {"refused", result.refused}});
    if (result.starting.empty()) {
        send(client, {{"ok", true}, {"done", true}, {"master_pid", ::getpid()}});
        client.close_when_flushed = true;
        return;
    }
    for (const auto& name : result.starting) client.waiting.insert(name);
    const int fd = client.fd.get();
    client.subscription = master_.subscribe([this, fd](const json& event) {
        auto it = clients_.find(fd);
        if (it == clients_.end()) return;
        Client& c = *it->second;
        const std::string kind = event.value("event", ""), node = event.value("node", "");
        if ((kind != "ready" && kind != "failed" && kind != "not_ready") || !c.waiting.count(node)) return;
        send(c, event);
        c.waiting.erase(node);
        if (c.waiting.empty()) {
            master_.unsubscribe(c.subscription);
            c.subscription = 0;
            send(c, {{"ok", true}, {"done", true}, {"master_pid", ::getpid()}});
            c.close_when_flushed = true;
        }
        settle(fd);
    });
}

void ControlServer::finish_if_done(Client& client) {
    if (!client.waiting.empty() || !client.subscription) return;
    master_.unsubscribe(client.subscription);
    client.subscription = 0;
    send(client, {{"ok", client.failed.empty()},
                  {"done", true},
                  {"stopped", client.stopped},
                  {"not_running", client.not_running},
                  {"failed", client.failed}});
    client.close_when_flushed = true;
}

void ControlServer::send(Client& client, const json& message) {
    if (client.broken) return;
    // Replace rather than throw on bytes that are not UTF-8 (a parse error quoting what the client sent).
    client.out += message.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    on_writable(client);
    if (client.out.size() > max_output)
        drop(client, "does not read its replies (" + std::to_string(client.out.size() / 1024) + " KiB queued)");
}

// Marks the client for closing (settle() closes it: the caller may still hold `client`), with a log line.
void ControlServer::drop(Client& client, const std::string& why) {
    if (client.broken) return;
    log_->warn("control socket: the client pid {} {}; connection closed", client.pid, why);
    client.broken = true;
    client.in.clear();
    client.out.clear();
}

// A connection with no request under way (no stop/restart/add it waits on) that has been silent, or has not
// read what it was sent, for idle_timeout is closed: idle connections must not use up max_clients.
void ControlServer::arm_idle_timer(int fd) {
    auto it = clients_.find(fd);
    if (it == clients_.end()) return;
    Client& client = *it->second;
    auto due = client.last_activity + idle_timeout;
    client.idle_timer = loop_.at(due, [this, fd] {
        auto found = clients_.find(fd);
        if (found == clients_.end()) return;
        Client& c = *found->second;
        c.idle_timer = 0;
        auto now = std::chrono::steady_clock::now();
        if (c.subscription) c.last_activity = now;  // waiting on the master, not on the client
        if (now - c.last_activity >= idle_timeout) {
            drop(c, "sent no request for " + std::to_string(idle_timeout.count()) + "s");
            settle(fd);
            return;
        }
        arm_idle_timer(fd);
    });
}

// Writes what it can without blocking; never closes (the caller may still hold `client`): settle() does.
void ControlServer::on_writable(Client& client) {
    while (!client.out.empty() && !client.broken) {
        ssize_t n = ::send(client.fd.get(), client.out.data(), client.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n < 0) {  // EPIPE: the client is gone
            client.broken = true;
            return;
        }
        client.out.erase(0, static_cast<std::size_t>(n));
        client.last_activity = std::chrono::steady_clock::now();
    }
}

void ControlServer::settle(int fd) {
    auto it = clients_.find(fd);
    if (it == clients_.end()) return;
    Client& client = *it->second;
    if (client.broken || (client.close_when_flushed && client.out.empty() && !client.subscription)) {
        close(fd);
        return;
    }
    loop_.modify(fd, client.out.empty() ? EPOLLIN : EPOLLIN | EPOLLOUT);
}

void ControlServer::close(int fd) {
    auto it = clients_.find(fd);
    if (it == clients_.end()) return;
    if (it->second->subscription) master_.unsubscribe(it->second->subscription);
    loop_.cancel(it->second->idle_timer);
    loop_.unwatch(fd);
    clients_.erase(it);
}

void ControlServer::flush(std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (auto& [fd, client] : clients_) {
        while (!client->out.empty()) {
            auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return;
            pollfd entry{fd, POLLOUT, 0};
            if (::poll(&entry, 1, static_cast<int>(left.count())) <= 0) break;
            ssize_t n = ::send(fd, client->out.data(), client->out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            if (n < 0) break;
            client->out.erase(0, static_cast<std::size_t>(n));
        }
    }
}

}  // namespace ccmulti::supervisor
