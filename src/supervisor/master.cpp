#include "supervisor/master.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>

#include "platform/event_loop.hpp"
#include "platform/notify_socket.hpp"
#include "platform/proc.hpp"
#include "platform/proc_title.hpp"
#include "platform/signals.hpp"
#include "platform/spawn.hpp"
#include "supervisor/control_server.hpp"
#include "supervisor/master_log.hpp"
#include "supervisor/node_shim.hpp"
#include "supervisor/start_report.hpp"
#include "util/error.hpp"
#include "util/strings.hpp"

namespace ccmulti::supervisor {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

enum class NodeState { starting, ready, stopping, stopped, failed, exited };

const char* state_name(NodeState state) {
    switch (state) {
        case NodeState::starting:
            return "starting";
        case NodeState::ready:
            return "ready";
        case NodeState::stopping:
            return "stopping";
        case NodeState::stopped:
            return "stopped";
        case NodeState::failed:
            return "failed";
        case NodeState::exited:
            return "exited";
    }
    return "?";
}

bool alive(NodeState state) {
    return state == NodeState::starting || state == NodeState::ready || state == NodeState::stopping;
}

std::string describe_status(int status) {
    if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return "killed by SIG" + signal_name(WTERMSIG(status));
    return "ended with status " + std::to_string(status);
}

double seconds_since(Clock::time_point then) {
    return std::chrono::duration<double>(Clock::now() - then).count();
}

struct Node {
    NodeSpec spec;
    NodeState state = NodeState::starting;
    std::optional<PidFile> lock;
    UniqueFd log;
    std::uintmax_t log_start = 0;  // log size when this run began, for the failure report
    pid_t pid = 0;                 // the shim: process group leader
    Clock::time_point started, stop_began;
    std::optional<StopPlan> plan;
    bool quit_sent = false, kill_sent = false, start_reported = false;
    EventLoop::TimerId ready_timer = 0, quit_timer = 0, kill_timer = 0, give_up_timer = 0;
    std::string status;  // how it ended
};

class Master final : public MasterControl {
public:
    Master(const MasterConfig& config, GroupLocks locks, ReportSink report)
        : config_(config), master_lock_(std::move(locks.master)), report_(std::move(report)) {
        for (std::size_t i = 0; i < config.nodes.size(); ++i) {
            auto node = std::make_unique<Node>();
            node->spec = config.nodes[i];
            node->lock.emplace(std::move(locks.nodes[i]));
            nodes_.push_back(std::move(node));
        }
    }

    int run() {
        // Whatever fds the caller left open without CLOEXEC (a shell's fd 3, a test runner's pipes) must not
        // reach the nodes. Everything ccmulti opens is CLOEXEC already; spawn clears the flag only on the
        // pid-file lock it hands to a node shim.
        ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
        master_lock_.write(::getpid(), self_start_time());
        std::vector<std::string> names;
        for (const auto& node : nodes_) names.push_back(node->spec.name);
        set_proc_title(std::string(master_title_prefix) + " [" + join(names, " ") + "]", "ccmulti-master");
        // Orphans of our nodes (a task's subprocess whose parent died) come back to us, not to init.
        if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) throw SystemError("PR_SET_CHILD_SUBREAPER", errno);
        log_ = make_master_log(config_.log_file, config_.foreground);
        log_->info("master started for {} in {}", join(names, " "), config_.run_dir.string());

        loop_.on_signal(SIGCHLD, [this](const auto&) { reap(); });
        loop_.on_signal(SIGTERM, [this](const auto&) { on_shutdown_signal(SIGTERM); });
        loop_.on_signal(SIGINT, [this](const auto&) { on_shutdown_signal(SIGINT); });
        loop_.on_signal(SIGQUIT, [this](const auto&) { on_shutdown_signal(SIGQUIT); });
        loop_.on_signal(SIGHUP, [this](const auto&) { log_->info("SIGHUP ignored (reload is not implemented yet)"); });
        loop_.on_signal(SIGUSR1, [this](const auto&) { log_->info("SIGUSR1 ignored"); });
        loop_.on_signal(SIGPIPE, [](const auto&) {});

        notify_ = std::make_unique<NotifySocket>(notify_socket(config_.run_dir));
        loop_.watch(notify_->fd(), EPOLLIN, [this](std::uint32_t) { on_notify(); });
        control_ = std::make_unique<ControlServer>(loop_, *this, control_socket(config_.run_dir), log_);

        for (auto& node : nodes_) start_node(*node);
        maybe_finish_start_report();
        if (!all_gone()) loop_.run();

        control_->flush(std::chrono::milliseconds(1000));
        control_.reset();
        notify_.reset();
        log_->info("master exiting: all nodes are gone");
        master_lock_.remove();
        return start_ok_ ? 0 : 1;
    }

    // --- MasterControl -------------------------------------------------------------------------------
    json describe() const override {
        json nodes = json::array();
        for (const auto& node : nodes_) {
            json entry = {{"name", node->spec.name},
                          {"state", state_name(node->state)},
                          {"pid", node->pid},
                          {"pidfile", node->spec.pidfile},
                          {"logfile", node->spec.logfile},
                          {"uptime", alive(node->state) ? seconds_since(node->started) : 0.0}};
            if (!node->status.empty()) entry["status"] = node->status;
            nodes.push_back(entry);
        }
        return {{"master", {{"pid", ::getpid()}, {"run_dir", config_.run_dir}, {"shutdown", shutdown_level_}}},
                {"nodes", nodes}};
    }

    StopResult stop(const std::vector<std::string>& names, StopMode mode,
                    std::optional<std::chrono::milliseconds> timeout) override {
        StopResult result;
        std::vector<Node*> targets;
        if (names.empty()) {
            for (auto& node : nodes_) targets.push_back(node.get());
        } else {
            for (const auto& name : names) {
                Node* found = find(name);
                if (found)
                    targets.push_back(found);
                else
                    result.not_running.push_back(name);
            }
        }
        const auto now = Clock::now();
        for (Node* node : targets) {
            if (!alive(node->state)) {
                result.not_running.push_back(node->spec.name);
                continue;
            }
            result.stopping.push_back(node->spec.name);
            begin_stop(*node, plan_stop(now, timeout.value_or(node->spec.stop_timeout), mode), mode);
        }
        return result;
    }

    int subscribe(std::function<void(const json&)> listener) override {
        int id = next_listener_++;
        listeners_[id] = std::move(listener);
        return id;
    }
    void unsubscribe(int id) override { listeners_.erase(id); }

    bool is_gone(const std::string& name) const override {
        for (const auto& node : nodes_)
            if (node->spec.name == name) return !alive(node->state);
        return true;
    }

private:
    Node* find(const std::string& name) {
        for (auto& node : nodes_)
            if (node->spec.name == name) return node.get();
        Node* by_short = nullptr;
        for (auto& node : nodes_)
            if (node->spec.name.substr(0, node->spec.name.find('@')) == name) {
                if (by_short) return nullptr;  // ambiguous
                by_short = node.get();
            }
        return by_short;
    }

    Node* find_by_pid(pid_t pid) {
        for (auto& node : nodes_)
            if (node->pid == pid && alive(node->state)) return node.get();
        return nullptr;
    }

    void emit(const json& event) {
        auto listeners = listeners_;  // a listener may unsubscribe while we iterate
        for (auto& [id, listener] : listeners)
            if (listeners_.count(id)) listener(event);
    }

    std::vector<std::string> node_environment(const NodeSpec& spec) const {
        // The master's environment, minus what belongs to the master's own supervisor (systemd), plus the
        // node's settings. Later entries win in getenv, but keep one entry per name anyway.
        std::map<std::string, std::string> env;
        for (char** e = environ; *e; ++e) {
            std::string entry = *e;
            auto eq = entry.find('=');
            if (eq == std::string::npos) continue;
            std::string name = entry.substr(0, eq);
            if (name == "NOTIFY_SOCKET" || name.starts_with("LISTEN_") || name.starts_with("WATCHDOG_")) continue;
            env[name] = entry.substr(eq + 1);
        }
        for (const auto& entry : spec.env) {
            auto eq = entry.find('=');
            if (eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
        }
        env["CCMULTI_NODE"] = spec.name;
        env["CCMULTI_QUEUES"] = join(spec.queues, ",");
        env["CCMULTI_CONCURRENCY"] = spec.concurrency > 0 ? std::to_string(spec.concurrency) : "";
        env["NOTIFY_SOCKET"] = notify_->path().string();
        std::vector<std::string> out;
        for (const auto& [name, value] : env) out.push_back(name + "=" + value);
        return out;
    }

    void start_node(Node& node) {
        const NodeSpec& spec = node.spec;
        node.started = Clock::now();
        try {
            std::error_code ec;
            std::filesystem::create_directories(spec.logfile.parent_path(), ec);
            node.log.reset(::open(spec.logfile.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644));
            if (!node.log) throw SystemError("cannot open log file " + spec.logfile.string(), errno);
            struct stat st {};
            if (::fstat(node.log.get(), &st) == 0) node.log_start = static_cast<std::uintmax_t>(st.st_size);

            SpawnOptions options;
            options.program = "/proc/self/exe";  // this very binary, even if the file was replaced meanwhile
            options.argv0 = "ccmulti";
            options.args = {node_shim_command, spec.name, std::to_string(node.lock->fd()), std::to_string(::getpid()),
                            "--"};
            options.args.insert(options.args.end(), spec.argv.begin(), spec.argv.end());
            options.env = node_environment(spec);
            options.cwd = spec.cwd;
            options.stdout_fd = node.log.get();
            options.stderr_fd = node.log.get();
            options.new_process_group = true;
            options.parent_death_signal = master_death_signal;
            options.pass_fd = node.lock->fd();
            node.pid = spawn(options);
        } catch (const Error& e) {
            node.state = NodeState::failed;
            node.status = e.what();
            log_->error("{}: {}", spec.name, e.what());
            report_start_failure(node, e.what());
            node.lock->remove();
            node.lock.reset();
            return;
        }
        // The child exists (or is a zombie we have not reaped yet): its start time is readable now.
        auto stat = read_proc_stat(node.pid);
        node.lock->write(node.pid, stat ? stat->start_time : 0);
        log_->info("{}: started, pid {}, log {}", spec.name, node.pid, spec.logfile.string());
        node.ready_timer = loop_.after(spec.start_secs, [this, &node] {
            node.ready_timer = 0;
            if (node.state == NodeState::starting)
                mark_ready(node, "up " + fmt_seconds(std::chrono::duration<double>(node.spec.start_secs).count()));
        });
    }

    static std::string fmt_seconds(double seconds) {
        char buffer[32];
        std::snprintf(buffer, sizeof buffer, "%.1fs", seconds);
        return buffer;
    }

    void mark_ready(Node& node, const std::string& how) {
        node.state = NodeState::ready;
        log_->info("{}: ready ({})", node.spec.name, how);
        if (!node.start_reported) {
            node.start_reported = true;
            send_report({{"event", "ready"},
                         {"node", node.spec.name},
                         {"pid", node.pid},
                         {"log", node.spec.logfile},
                         {"how", how}});
        }
        maybe_finish_start_report();
    }

    void report_start_failure(Node& node, const std::string& error) {
        if (node.start_reported) return;
        node.start_reported = true;
        start_ok_ = false;
        send_report({{"event", "failed"},
                     {"node", node.spec.name},
                     {"error", error},
                     {"log", node.spec.logfile},
                     {"log_tail", log_tail(node.spec.logfile, node.log_start)}});
        maybe_finish_start_report();
    }

    void send_report(const json& event) {
        if (report_done_) return;
        if (report_) report_(event);
    }

    void maybe_finish_start_report() {
        if (report_done_) return;
        for (const auto& node : nodes_)
            if (!node->start_reported) return;
        send_report({{"event", "done"}, {"ok", start_ok_}, {"master_pid", ::getpid()}});
        report_done_ = true;
        report_ = nullptr;  // a daemon's report pipe closes here: `ccmulti start` returns
    }

    void on_notify() {
        while (auto message = notify_->receive()) {
            if (message->uid != ::geteuid() && message->uid != 0) continue;
            Node* node = find_by_pid(message->pid);
            if (!node) {  // a process inside a node's group (the program, or one of its children)
                auto stat = read_proc_stat(message->pid);
                if (stat) node = find_by_pid(stat->pgrp);
            }
            if (!node) {
                log_->warn("notify: message from pid {} which belongs to no node, ignored", message->pid);
                continue;
            }
            const auto& fields = message->fields;
            if (auto it = fields.find("READY");
                it != fields.end() && it->second == "1" && node->state == NodeState::starting) {
                loop_.cancel(node->ready_timer);
                node->ready_timer = 0;
                mark_ready(*node, "READY=1");
            }
            if (auto it = fields.find("STOPPING"); it != fields.end() && it->second == "1")
                log_->info("{}: says it is stopping", node->spec.name);
            if (auto it = fields.find("STATUS"); it != fields.end())
                log_->info("{}: status: {}", node->spec.name, it->second);
        }
    }

    void send_signal(Node& node, int sig, bool whole_group) {
        // The pid is our child and not reaped yet (we reap it only in reap()), so it cannot have been
        // recycled: signalling it, or the group it leads, is safe.
        if (::kill(whole_group ? -node.pid : node.pid, sig) != 0 && errno != ESRCH)
            log_->warn("{}: kill({}, SIG{}): {}", node.spec.name, whole_group ? -node.pid : node.pid, signal_name(sig),
                       std::strerror(errno));
        log_->info("{}: sent SIG{} to {}", node.spec.name, signal_name(sig),
                   whole_group ? "its process group" : "pid " + std::to_string(node.pid));
        emit({{"event", "signal"}, {"node", node.spec.name}, {"signal", signal_name(sig)}, {"pid", node.pid}});
    }

    void begin_stop(Node& node, StopPlan plan, StopMode mode) {
        if (node.state != NodeState::stopping) {
            node.state = NodeState::stopping;
            node.stop_began = Clock::now();
            if (node.ready_timer) loop_.cancel(node.ready_timer);
            node.ready_timer = 0;
            if (mode == StopMode::warm) send_signal(node, SIGTERM, false);
        } else if (node.plan) {
            plan = merge_plans(*node.plan, plan);
        }
        node.plan = plan;
        for (auto* timer : {&node.quit_timer, &node.kill_timer, &node.give_up_timer}) {
            if (*timer) loop_.cancel(*timer);
            *timer = 0;
        }
        if (!node.quit_sent) {
            if (plan.quit_at <= Clock::now() && mode != StopMode::kill) {
                quit(node);
            } else if (mode != StopMode::kill) {
                node.quit_timer = loop_.at(plan.quit_at, [this, &node] {
                    node.quit_timer = 0;
                    quit(node);
                });
            }
        }
        if (!node.kill_sent) {
            if (plan.kill_at <= Clock::now())
                kill_group(node);
            else
                node.kill_timer = loop_.at(plan.kill_at, [this, &node] {
                    node.kill_timer = 0;
                    kill_group(node);
                });
        }
        node.give_up_timer = loop_.at(plan.give_up_at, [this, &node] {
            node.give_up_timer = 0;
            auto stat = read_proc_stat(node.pid);
            std::string error = "pid " + std::to_string(node.pid) + " is still there " +
                                fmt_seconds(std::chrono::duration<double>(kill_grace).count()) + " after SIGKILL" +
                                (stat ? ", state " + describe_state(stat->state) : "");
            log_->error("{}: {}", node.spec.name, error);
            emit({{"event", "stuck"}, {"node", node.spec.name}, {"error", error}});
        });
    }

    void quit(Node& node) {
        if (node.quit_sent || !alive(node.state)) return;
        node.quit_sent = true;
        send_signal(node, SIGQUIT, false);
    }

    void kill_group(Node& node) {
        if (node.kill_sent || !alive(node.state)) return;
        node.kill_sent = true;
        node.quit_sent = true;
        send_signal(node, SIGKILL, true);
    }

    void on_shutdown_signal(int sig) {
        std::size_t alive_count = 0;
        for (const auto& node : nodes_) alive_count += alive(node->state);
        auto say = [&](const std::string& text) {
            log_->info("{}", text);  // the file; a foreground terminal gets it on stdout
            if (config_.foreground) std::cout << text << std::endl;
        };
        if (shutdown_level_ == "none" && sig != SIGQUIT) {
            shutdown_level_ = "warm";
            say("warm shutdown: waiting for " + std::to_string(alive_count) + " node" + (alive_count == 1 ? "" : "s") +
                " (Ctrl+C again for cold)");
            stop({}, StopMode::warm, std::nullopt);
        } else if (shutdown_level_ != "cold" && (sig == SIGINT || sig == SIGQUIT)) {
            shutdown_level_ = "cold";
            say("cold shutdown: running tasks are being terminated on " + std::to_string(alive_count) + " node" +
                (alive_count == 1 ? "" : "s") + " (Ctrl+C again to kill)");
            stop({}, StopMode::cold, std::nullopt);
        } else if (shutdown_level_ == "cold" && sig == SIGINT) {
            shutdown_level_ = "kill";
            say("killing " + std::to_string(alive_count) + " node" + (alive_count == 1 ? "" : "s"));
            stop({}, StopMode::kill, std::nullopt);
        }
    }

    // The one reaper. WNOWAIT first: while a node's leader is an unreaped zombie its pid (and so its
    // process group id) cannot be reused, so SIGKILLing what is left of its group is safe; then reap.
    void reap() {
        for (;;) {
            siginfo_t info{};
            if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
                if (errno == EINTR) continue;
                return;  // ECHILD
            }
            if (info.si_pid == 0) return;
            const pid_t pid = info.si_pid;
            Node* node = find_by_pid(pid);
            if (node) ::kill(-pid, SIGKILL);  // stragglers of the group (a task's subprocesses)
            int status = 0;
            while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            if (node) on_node_exit(*node, status);
        }
    }

    void on_node_exit(Node& node, int status) {
        for (auto* timer : {&node.ready_timer, &node.quit_timer, &node.kill_timer, &node.give_up_timer}) {
            if (*timer) loop_.cancel(*timer);
            *timer = 0;
        }
        node.status = describe_status(status);
        const NodeState was = node.state;
        if (was != NodeState::starting && !node.start_reported)  // stopped while still starting
            report_start_failure(node, "stopped before it was ready (" + node.status + ")");
        if (node.lock) node.lock->remove();
        node.lock.reset();
        node.log.reset();
        if (was == NodeState::starting) {
            node.state = NodeState::failed;
            log_->error("{}: {} before it was ready", node.spec.name, node.status);
            report_start_failure(node, node.status + " before it was ready");
        } else if (was == NodeState::stopping) {
            node.state = NodeState::stopped;
            log_->info("{}: stopped ({}) after {}", node.spec.name, node.status,
                       fmt_seconds(seconds_since(node.stop_began)));
        } else {
            node.state = NodeState::exited;
            log_->error("{}: {} unexpectedly (restarting comes with a later version)", node.spec.name, node.status);
        }
        emit({{"event", "gone"},
              {"node", node.spec.name},
              {"status", node.status},
              {"seconds", was == NodeState::stopping ? seconds_since(node.stop_began) : 0.0}});
        if (all_gone()) loop_.stop();
    }

    bool all_gone() const {
        for (const auto& node : nodes_)
            if (alive(node->state)) return false;
        return true;
    }

    const MasterConfig& config_;
    PidFile master_lock_;
    ReportSink report_;
    bool report_done_ = false;
    bool start_ok_ = true;
    std::string shutdown_level_ = "none";
    EventLoop loop_;
    std::shared_ptr<spdlog::logger> log_;
    std::unique_ptr<NotifySocket> notify_;
    std::unique_ptr<ControlServer> control_;
    std::vector<std::unique_ptr<Node>> nodes_;
    std::map<int, std::function<void(const json&)>> listeners_;
    int next_listener_ = 1;
};

}  // namespace

int run_master(const MasterConfig& config, GroupLocks locks, ReportSink report) {
    Master master(config, std::move(locks), std::move(report));
    return master.run();
}

}  // namespace ccmulti::supervisor
