#include "supervisor/master.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>


#include "platform/proc.hpp"
#include "platform/proc_title.hpp"
#include "platform/signals.hpp"
#include "platform/systemd_notify.hpp"
#include "supervisor/master_impl.hpp"
#include "supervisor/master_log.hpp"
#include "util/error.hpp"
#include "util/strings.hpp"

namespace ccmulti::supervisor {

using nlohmann::json;

std::string describe_exit(int status) {
    if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return "killed by SIG" + signal_name(WTERMSIG(status));
    return "ended with status " + std::to_string(status);
}

// How a program ends when it is asked to stop: not a crash.
bool asked_to_stop(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status) == 0;
    return WIFSIGNALED(status) && (WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGINT);
}

double seconds_since(MasterClock::time_point then) {
    return std::chrono::duration<double>(MasterClock::now() - then).count();
}

std::string fmt_seconds(double seconds) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.1fs", seconds);
    return buffer;
}

Master::Master(const MasterConfig& config, GroupLocks locks, ReportSink report)
    : config_(config), master_lock_(std::move(locks.master)), report_(std::move(report)) {
    for (std::size_t i = 0; i < config.nodes.size(); ++i) {
        auto node = std::make_unique<MasterNode>();
        node->spec = config.nodes[i];
        node->lock.emplace(std::move(locks.nodes[i]));
        node->backoff = RestartBackoff(config.restart);
        node->from_plan = true;
        nodes_.push_back(std::move(node));
    }
}

int Master::run() {
    // Whatever fds the caller left open without CLOEXEC (a shell's fd 3, a test runner's pipes) must not
    // reach the nodes. Everything ccmulti opens is CLOEXEC already; spawn clears the flag only on the
    // pid-file lock it hands to a node shim.
    if (!cloexec_from(3, fd_ceiling())) throw SystemError("marking inherited fds close-on-exec", errno);
    // Every signal is taken (blocked, read from the loop) before the title and the pid file make this a
    // master that `kill -HUP $(cat master.pid)` or `ccmulti reopen` may signal; the handlers run from the loop.
    loop_.on_signal(SIGUSR1, [this](const auto&) { reopen_logs(); });
    loop_.on_signal(SIGCHLD, [this](const auto&) { reap(); });
    loop_.on_signal(SIGTERM, [this](const auto&) { on_shutdown_signal(SIGTERM); });
    loop_.on_signal(SIGINT, [this](const auto&) { on_shutdown_signal(SIGINT); });
    loop_.on_signal(SIGQUIT, [this](const auto&) { on_shutdown_signal(SIGQUIT); });
    loop_.on_signal(SIGHUP, [this](const auto&) {
        if (shutdown_level_ != "none") {
            log_->info("SIGHUP: ignored, the group is shutting down");
            return;
        }
        log_->info("SIGHUP: reloading the group");
        reload({}, "SIGHUP", ReloadKind::configuration);
    });
    loop_.on_signal(SIGPIPE, [](const auto&) {});
    master_lock_.write(::getpid());
    std::vector<std::string> names;
    for (const auto& node : nodes_) names.push_back(node->spec.name);
    update_title();
    // Orphans of our nodes (a task's subprocess whose parent died) come back to us, not to init.
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) throw SystemError("PR_SET_CHILD_SUBREAPER", errno);
    log_ = make_master_log(config_.log_file, config_.foreground);
    if (config_.dashboard) {
        // Before anything else runs: an address in use fails the start here. Its threads log into the master's
        // log (set as the default before any of them exists) and wait for the control socket, which answers once
        // the loop runs.
        spdlog::set_default_logger(log_);
        dashboard_ = config_.dashboard();
    }
    journal_ = config_.foreground && stderr_is_journal();
    log_->info("master started for {} in {}", join(names, " "), config_.run_dir.string());
    containment_ = std::make_unique<Containment>(config_.run_dir, log_);  // also ends a dead master's leftovers

    notify_ = std::make_unique<NotifySocket>(notify_socket(config_.run_dir));
    loop_.watch(notify_->fd(), EPOLLIN, [this](std::uint32_t) { on_notify(); });
    control_ = std::make_unique<ControlServer>(loop_, *this, control_socket(config_.run_dir), log_);
    // Hot reload: a change below a node's --watch paths replaces it, start-before-stop (reload).
    code_watch_ = std::make_unique<CodeWatch>(
        loop_, log_, [this](std::vector<std::string> changed, std::string reason) { on_code_change(changed, reason); });
    set_watches();
    if (dashboard_) log_->info("dashboard on {}", dashboard_->url());

    for (auto& node : nodes_) apply(*node, NodeEvent::start);
    maybe_finish_start_report();
    if (!all_gone()) loop_.run();

    if (dashboard_) dashboard_->stop();
    code_watch_.reset();
    control_->flush(std::chrono::milliseconds(1000));
    control_.reset();
    dashboard_.reset();
    notify_.reset();
    containment_->finish();
    log_->info("master exiting: all nodes are gone");
    master_lock_.remove();
    return start_ok_ ? 0 : 1;
}

MasterControl::StopResult Master::stop(const std::vector<std::string>& names, StopMode mode,
                                       std::optional<std::chrono::milliseconds> timeout) {
    StopResult result;
    std::vector<MasterNode*> targets;
    if (names.empty()) {
        for (auto& node : nodes_) targets.push_back(node.get());
    } else {
        for (const auto& name : names) {
            MasterNode* found = find(name);
            if (found)
                targets.push_back(found);
            else
                result.not_running.push_back(name);
        }
    }
    const auto now = MasterClock::now();
    for (MasterNode* node : targets) {
        const bool running = alive(node->state);
        if (node->state == NodeState::backoff) log_->info("{}: restart cancelled by a stop request", node->spec.name);
        const StopPlan plan = plan_stop(now, timeout ? timeout : node->spec.stop_timeout, mode);
        apply(*node, NodeEvent::stop, {.reason = "stopped by request", .plan = plan, .mode = mode});
        // Replaced processes still on their warm stop follow the same request (only ever sooner).
        for (auto& old : node->retiring) begin_stop(*node, old, plan, mode, false);
        (running ? result.stopping : result.not_running).push_back(node->spec.name);
    }
    return result;
}

MasterControl::AddResult Master::add(const std::vector<NodeSpec>& specs) {
    AddResult result;
    std::vector<MasterNode*> to_start;
    for (const auto& spec : specs) {
        MasterNode* existing = nullptr;
        for (auto& node : nodes_)
            if (node->spec.name == spec.name) existing = node.get();
        if (existing && active(existing->state)) {
            result.refused.push_back(
                {{"node", spec.name},
                 {"error", spec.name + " already running" +
                               (alive(existing->state) ? " (pid " + std::to_string(existing->run.pid) + ")"
                                                       : " (in backoff, restarting)")},
                 {"pid", alive(existing->state) ? json(existing->run.pid) : json(nullptr)}});
            continue;
        }
        std::optional<PidFile> lock;
        try {
            lock = PidFile::try_acquire(spec.pidfile);
        } catch (const Error& e) {
            result.refused.push_back({{"node", spec.name}, {"error", e.what()}});
            continue;
        }
        if (!lock) {
            auto holder = check_pidfile(spec.pidfile, node_title_prefix(spec.name));
            result.refused.push_back(
                {{"node", spec.name},
                 {"error", holder.running() ? spec.name + " already running (pid " + std::to_string(holder.pid) + ")"
                                            : "pid file " + spec.pidfile.string() + " of " + spec.name +
                                                  " is locked by another process"}});
            continue;
        }
        MasterNode* node = existing;
        if (!node) {
            nodes_.push_back(std::make_unique<MasterNode>());
            node = nodes_.back().get();
        }
        node->spec = spec;
        node->lock.emplace(std::move(*lock));
        node->backoff = RestartBackoff(config_.restart);
        node->start_reported = false;
        node->in_report = false;  // its readiness goes to the `start` that added it, not the master's report
        node->run.quit_sent = node->run.kill_sent = false;
        node->run.plan.reset();
        node->status.clear();
        node->last_log_tail.clear();
        to_start.push_back(node);
        result.starting.push_back(spec.name);
    }
    if (!to_start.empty()) {
        log_->info("control: adding {}", join(result.starting, " "));
        specs_changed();
        // Like restart: events only after the reply.
        loop_.after(std::chrono::milliseconds(0), [this, to_start] {
            for (MasterNode* node : to_start) apply(*node, NodeEvent::start);
        });
    }
    return result;
}

int Master::subscribe(std::function<void(const json&)> listener) {
    int id = next_listener_++;
    listeners_[id] = std::move(listener);
    return id;
}

void Master::unsubscribe(int id) {
    listeners_.erase(id);
}

bool Master::is_gone(const std::string& name) const {
    for (const auto& node : nodes_)
        if (node->spec.name == name) return !alive(node->state) && node->retiring.empty();
    return true;
}

void Master::update_title() {
    std::vector<std::string> names;
    for (const auto& node : nodes_) names.push_back(node->spec.name);
    std::string label = config_.app.empty() ? join(names, " ") : config_.app;
    set_proc_title(std::string(master_title_prefix) + " [" + label + "]", "ccmulti-master");
}

void Master::specs_changed() {
    update_title();
    set_watches();
}

// What the nodes watch, set up again only when it changed (a node added, or replaced with other --watch options):
// a rebuilt watch would miss what changes while it is set up. A watch that cannot be set up now (the inotify
// limit) is logged and the watches stay as they were: the nodes run, unwatched.
void Master::set_watches() {
    if (!code_watch_) return;  // not yet: the run's first call comes once the loop's parts are there
    std::vector<NodeSpec> specs;
    json watched = json::array();
    for (const auto& node : nodes_) {
        specs.push_back(node->spec);
        watched.push_back(
            {node->spec.name, node->spec.watch, node->spec.watch_ignore, node->spec.watch_debounce.count()});
    }
    if (watched == watched_) return;
    try {
        code_watch_->set_nodes(specs);
        watched_ = std::move(watched);
    } catch (const std::exception& e) {
        log_->error("watch: {} (the watches stay as they were)", e.what());
    }
}

// A saved file concerns these nodes: replace them, one at a time. Changes seen by several watches (nodes with
// other ignores or debounce) join the reload job of the first, so the group is still replaced one node at a time;
// a node already waiting in it is not queued twice. A node already in a restart or reload (its replacement may
// have read the code before this change) is replaced again once that is over.
void Master::on_code_change(const std::vector<std::string>& names, const std::string& reason) {
    auto job = jobs_.find(watch_job_);
    std::vector<std::string> now;
    std::vector<MasterNode*> joining;
    for (const auto& name : names) {
        MasterNode* node = find(name);
        if (!node || !active(node->state) || node->state == NodeState::stopping) continue;
        if (node->restart_job) {
            node->reload_again = reason;
        } else if (job != jobs_.end()) {
            if (std::find(job->second.queue.begin(), job->second.queue.end(), node) == job->second.queue.end())
                joining.push_back(node);
        } else {
            now.push_back(name);
        }
    }
    if (!joining.empty()) {
        std::vector<std::string> joined;
        for (MasterNode* node : joining) joined.push_back(node->spec.name);
        log_->info("reload ({}): replacing {} after the nodes before it", reason, join(joined, " "));
        queue_nodes(watch_job_, joining);
    }
    if (!now.empty()) watch_job_ = reload(now, reason, ReloadKind::code).job;
}

MasterNode* Master::find(const std::string& name) {
    for (auto& node : nodes_)
        if (node->spec.name == name) return node.get();
    MasterNode* by_short = nullptr;
    for (auto& node : nodes_)
        if (node->spec.name.substr(0, node->spec.name.find('@')) == name) {
            if (by_short) return nullptr;  // ambiguous
            by_short = node.get();
        }
    return by_short;
}

// Which process of which node `pid` is: the node's own (while alive), its successor, or a retiring one.
Master::Found Master::find_by_pid(pid_t pid) {
    if (pid <= 0) return {};
    for (auto& node : nodes_) {
        if (node->run.pid == pid && alive(node->state)) return {node.get(), &node->run, Role::node};
        if (node->successor && node->successor->pid == pid) return {node.get(), node->successor.get(), Role::successor};
        for (auto& old : node->retiring)
            if (old.pid == pid) return {node.get(), &old, Role::retiring};
    }
    return {};
}

void Master::emit(const json& event) {
    auto listeners = listeners_;  // a listener may unsubscribe while we iterate
    for (auto& [id, listener] : listeners)
        if (listeners_.count(id)) listener(event);
}

// SIGUSR1 (log rotation, etc/logrotate.d/ccmulti): the master's log, and every node's through its shim (the
// program itself is not signalled: the shim owns the node's log file).
void Master::reopen_logs() {
    reopen_master_log(*log_);
    for (const auto& node : nodes_) {
        std::vector<pid_t> shims;
        if (alive(node->state)) shims.push_back(node->run.pid);
        if (node->successor && node->successor->pid) shims.push_back(node->successor->pid);
        for (const auto& old : node->retiring) shims.push_back(old.pid);
        for (pid_t pid : shims)
            if (::kill(pid, SIGUSR1) != 0 && errno != ESRCH)
                log_->warn("{}: kill({}, SIGUSR1): {}", node->spec.name, pid, std::strerror(errno));
    }
}

void Master::on_shutdown_signal(int sig) {
    std::size_t alive_count = 0;
    for (const auto& node : nodes_) alive_count += alive(node->state);
    auto say = [&](const std::string& text) {
        log_->info("{}", text);  // the file; a foreground terminal gets it on stdout
        if (config_.foreground && !journal_) std::cout << text << std::endl;  // the journal has it already
    };
    if (shutdown_level_ == "none" && sig != SIGQUIT) {
        shutdown_level_ = "warm";
        platform::systemd_notify("STOPPING=1");
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

bool Master::all_gone() const {
    for (const auto& node : nodes_)
        if (active(node->state) || !node->retiring.empty()) return false;
    return !planner_;
}

int run_master(const MasterConfig& config, GroupLocks locks, ReportSink report) {
    Master master(config, std::move(locks), std::move(report));
    return master.run();
}

}  // namespace ccmulti::supervisor
