#include "supervisor/master.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <iostream>
#include <map>
#include <set>

#include <systemd/sd-daemon.h>

#include "platform/event_loop.hpp"
#include "platform/notify_socket.hpp"
#include "platform/proc.hpp"
#include "platform/proc_table.hpp"
#include "platform/proc_title.hpp"
#include "platform/read_file.hpp"
#include "platform/signals.hpp"
#include "platform/spawn.hpp"
#include "supervisor/code_watch.hpp"
#include "supervisor/containment.hpp"
#include "supervisor/control_server.hpp"
#include "supervisor/log_watch.hpp"
#include "supervisor/master_log.hpp"
#include "supervisor/node_lifecycle.hpp"
#include "supervisor/node_shim.hpp"
#include "supervisor/start_report.hpp"
#include "util/error.hpp"
#include "util/strings.hpp"

namespace ccmulti::supervisor {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

std::string describe_status(int status) {
    if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return "killed by SIG" + signal_name(WTERMSIG(status));
    return "ended with status " + std::to_string(status);
}

// How a program ends when it is asked to stop: not a crash.
bool asked_to_stop(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status) == 0;
    return WIFSIGNALED(status) && (WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGINT);
}

double seconds_since(Clock::time_point then) {
    return std::chrono::duration<double>(Clock::now() - then).count();
}

struct Node {
    NodeSpec spec;
    NodeState state = NodeState::stopped;  // not started yet: the first `start` event begins its life
    std::optional<PidFile> lock;
    UniqueFd log;
    std::uintmax_t log_start = 0;  // log size when this run began, for the failure report
    pid_t pid = 0;                 // the shim: process group leader
    Clock::time_point started, stop_began;
    std::optional<StopPlan> plan;
    bool quit_sent = false, kill_sent = false, start_reported = false;
    bool in_report = true;            // one of the master's own first nodes (start report); not a node added later
    bool not_ready_reported = false;  // `start` was told it was not ready at its start_timeout
    EventLoop::TimerId ready_timer = 0, quit_timer = 0, kill_timer = 0, give_up_timer = 0;
    EventLoop::TimerId start_timer = 0;  // spec.start_timeout: reported as not ready then
    std::string status;                  // how it ended
    // Crash restarts
    RestartBackoff backoff;
    int restarts = 0;  // starts after the first one, for any reason
    EventLoop::TimerId restart_timer = 0;
    Clock::time_point restart_at;
    std::vector<std::string> last_log_tail;  // of the run that ended last
    std::string program_exit;                // how the program ended, from the shim (CCMULTI_PROGRAM_EXIT)
    int restart_job = 0;                     // the restart request this node is part of
    std::optional<NodeSpec> next_spec;       // replaces `spec` when the node starts again (restart with new options)
    bool restart_when_ready = false;         // a SIGHUP came while it was starting
    std::unique_ptr<LogWatch> log_watch;     // readiness from the log (spec.ready_pattern)
};

struct RestartJob {
    bool all_at_once = false;
    std::deque<Node*> queue;  // not begun yet (rolling)
    std::set<Node*> in_flight;
    json restarted = json::array(), failed = json::array(), skipped = json::array();
};

class Master final : public MasterControl {
public:
    Master(const MasterConfig& config, GroupLocks locks, ReportSink report)
        : config_(config), master_lock_(std::move(locks.master)), report_(std::move(report)) {
        for (std::size_t i = 0; i < config.nodes.size(); ++i) {
            auto node = std::make_unique<Node>();
            node->spec = config.nodes[i];
            node->lock.emplace(std::move(locks.nodes[i]));
            node->backoff = RestartBackoff(config.restart);
            nodes_.push_back(std::move(node));
        }
    }

    int run() {
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
            log_->info("SIGHUP: rolling restart of every node");
            restart({}, false, {});
        });
        loop_.on_signal(SIGPIPE, [](const auto&) {});
        master_lock_.write(::getpid());
        std::vector<std::string> names;
        for (const auto& node : nodes_) names.push_back(node->spec.name);
        update_title();
        // Orphans of our nodes (a task's subprocess whose parent died) come back to us, not to init.
        if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) throw SystemError("PR_SET_CHILD_SUBREAPER", errno);
        log_ = make_master_log(config_.log_file, config_.foreground);
        journal_ = config_.foreground && stderr_is_journal();
        log_->info("master started for {} in {}", join(names, " "), config_.run_dir.string());
        containment_ = std::make_unique<Containment>(config_.run_dir, log_);  // also ends a dead master's leftovers

        notify_ = std::make_unique<NotifySocket>(notify_socket(config_.run_dir));
        loop_.watch(notify_->fd(), EPOLLIN, [this](std::uint32_t) { on_notify(); });
        control_ = std::make_unique<ControlServer>(loop_, *this, control_socket(config_.run_dir), log_);
        // Hot reload: a change below a node's --watch paths replaces it (for now: a rolling restart).
        code_watch_ = std::make_unique<CodeWatch>(
            loop_, log_, [this](std::vector<std::string> to_replace, std::string) { restart(to_replace, false, {}); });
        code_watch_->set_nodes(specs());

        for (auto& node : nodes_) apply(*node, NodeEvent::start);
        maybe_finish_start_report();
        if (!all_gone()) loop_.run();

        code_watch_.reset();
        control_->flush(std::chrono::milliseconds(1000));
        control_.reset();
        notify_.reset();
        containment_->finish();
        log_->info("master exiting: all nodes are gone");
        master_lock_.remove();
        return start_ok_ ? 0 : 1;
    }

    // --- MasterControl -------------------------------------------------------------------------------
    json describe() const override {
        // RSS of a node: everything in its process group (the program, its pool, a task's subprocesses).
        std::map<pid_t, std::uint64_t> rss_by_group;
        for (const auto& proc : scan_processes()) rss_by_group[proc.pgrp] += proc.rss_bytes;
        json nodes = json::array();
        for (const auto& node : nodes_) {
            const bool running = alive(node->state);
            json entry = {{"name", node->spec.name},
                          {"state", std::string(state_name(node->state))},
                          {"pid", running ? json(node->pid) : json(nullptr)},
                          {"pidfile", node->spec.pidfile},
                          {"logfile", node->spec.logfile},
                          {"uptime", running ? seconds_since(node->started) : 0.0},
                          {"restarts", node->restarts},
                          {"queues", node->spec.queues},
                          {"concurrency", node->spec.concurrency > 0 ? json(node->spec.concurrency) : json(nullptr)},
                          {"rss", running ? rss_by_group[node->pid] : 0}};
            if (!node->status.empty()) entry["status"] = node->status;
            if (node->state == NodeState::stopping && node->plan)  // null: a warm stop without a deadline
                entry["kill_in"] =
                    node->plan->kill_at == StopPlan::never
                        ? json(nullptr)
                        : json(
                              std::max(0.0, std::chrono::duration<double>(node->plan->kill_at - Clock::now()).count()));
            if (node->state == NodeState::backoff) {
                entry["backoff"] = {
                    {"attempt", node->backoff.attempts()},
                    {"restart_in",
                     std::max(0.0, std::chrono::duration<double>(node->restart_at - Clock::now()).count())}};
            }
            if (!running && !node->last_log_tail.empty()) entry["log_tail"] = node->last_log_tail;
            entry.update(containment_->node_info(node->spec.name, running, entry["rss"].get<std::uint64_t>()));
            nodes.push_back(entry);
        }
        return {{"master",
                 {{"pid", ::getpid()},
                  {"run_dir", config_.run_dir},
                  {"shutdown", shutdown_level_},
                  {"uptime", seconds_since(started_)},
                  {"rss", read_rss(::getpid()).value_or(0)},
                  {"containment", containment_->describe()}}},
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
            const bool running = alive(node->state);
            if (node->state == NodeState::backoff)
                log_->info("{}: restart cancelled by a stop request", node->spec.name);
            apply(*node, NodeEvent::stop,
                  {.reason = "stopped by request",
                   .plan = plan_stop(now, timeout ? timeout : node->spec.stop_timeout, mode),
                   .mode = mode});
            (running ? result.stopping : result.not_running).push_back(node->spec.name);
        }
        return result;
    }

    RestartResult restart(const std::vector<std::string>& names, bool all_at_once,
                          const std::vector<NodeSpec>& specs) override {
        RestartResult result;
        std::vector<Node*> targets;
        if (names.empty()) {
            for (auto& node : nodes_)
                if (active(node->state)) targets.push_back(node.get());
        } else {
            for (const auto& name : names) {
                Node* found = find(name);
                if (found && active(found->state))
                    targets.push_back(found);
                else
                    result.not_running.push_back(found ? found->spec.name : name);
            }
        }
        std::vector<Node*> accepted;
        for (Node* node : targets) {
            if (node->state == NodeState::stopping || node->restart_job) {
                result.not_running.push_back(node->spec.name);  // being stopped, or restarted already
                continue;
            }
            auto spec =
                std::find_if(specs.begin(), specs.end(), [&](const NodeSpec& s) { return s.name == node->spec.name; });
            if (spec != specs.end() && spec->pidfile != node->spec.pidfile) {
                result.refused.push_back(
                    {{"node", node->spec.name},
                     {"error", "its pid file would move from " + node->spec.pidfile.string() + " to " +
                                   spec->pidfile.string() + "; stop it, then start it with the new one"}});
                continue;
            }
            node->next_spec.reset();
            if (spec != specs.end()) node->next_spec = *spec;
            accepted.push_back(node);
            result.restarting.push_back(node->spec.name);
        }
        if (accepted.empty()) return result;
        const int id = next_job_++;
        result.job = id;
        RestartJob& job = jobs_[id];
        job.all_at_once = all_at_once;
        for (Node* node : accepted) job.queue.push_back(node);
        log_->info("control: {} restart of {}", all_at_once ? "all-at-once" : "rolling", join(result.restarting, " "));
        // The events follow the reply that names the job, so the caller can subscribe first: begin from the loop.
        loop_.after(std::chrono::milliseconds(0), [this, id] { advance_job(id); });
        return result;
    }

    AddResult add(const std::vector<NodeSpec>& specs) override {
        AddResult result;
        std::vector<Node*> to_start;
        for (const auto& spec : specs) {
            Node* existing = nullptr;
            for (auto& node : nodes_)
                if (node->spec.name == spec.name) existing = node.get();
            if (existing && active(existing->state)) {
                result.refused.push_back(
                    {{"node", spec.name},
                     {"error", spec.name + " already running" +
                                   (alive(existing->state) ? " (pid " + std::to_string(existing->pid) + ")"
                                                           : " (in backoff, restarting)")},
                     {"pid", alive(existing->state) ? json(existing->pid) : json(nullptr)}});
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
                     {"error", holder.running()
                                   ? spec.name + " already running (pid " + std::to_string(holder.pid) + ")"
                                   : "pid file " + spec.pidfile.string() + " of " + spec.name +
                                         " is locked by another process"}});
                continue;
            }
            Node* node = existing;
            if (!node) {
                nodes_.push_back(std::make_unique<Node>());
                node = nodes_.back().get();
            }
            node->spec = spec;
            node->lock.emplace(std::move(*lock));
            node->backoff = RestartBackoff(config_.restart);
            node->start_reported = false;
            node->in_report = false;  // its readiness goes to the `start` that added it, not the master's report
            node->quit_sent = node->kill_sent = false;
            node->plan.reset();
            node->status.clear();
            node->last_log_tail.clear();
            to_start.push_back(node);
            result.starting.push_back(spec.name);
        }
        if (!to_start.empty()) {
            log_->info("control: adding {}", join(result.starting, " "));
            set_watches();
            update_title();
            // Like restart: events only after the reply.
            loop_.after(std::chrono::milliseconds(0), [this, to_start] {
                for (Node* node : to_start) apply(*node, NodeEvent::start);
            });
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
    void update_title() {
        std::vector<std::string> names;
        for (const auto& node : nodes_) names.push_back(node->spec.name);
        std::string label = config_.app.empty() ? join(names, " ") : config_.app;
        set_proc_title(std::string(master_title_prefix) + " [" + label + "]", "ccmulti-master");
    }

    // --- restart jobs ----------------------------------------------------------------------------------
    void advance_job(int id) {
        auto it = jobs_.find(id);
        if (it == jobs_.end()) return;
        RestartJob& job = it->second;
        while (!job.queue.empty() && (job.all_at_once || job.in_flight.empty())) {
            Node* node = job.queue.front();
            job.queue.pop_front();
            if (!active(node->state) || node->state == NodeState::stopping) {
                job.skipped.push_back(node->spec.name);
                node->next_spec.reset();
                continue;
            }
            job.in_flight.insert(node);
            node->restart_job = id;
            emit({{"event", "restarting"}, {"job", id}, {"node", node->spec.name}});
            if (node->state == NodeState::backoff)
                log_->info("{}: restarting now (requested; was in backoff)", node->spec.name);
            else
                log_->info("{}: restarting (requested): warm stop first", node->spec.name);
            apply(*node, NodeEvent::restart,
                  {.reason = "restart requested",
                   .plan = plan_stop(Clock::now(), node->spec.stop_timeout, StopMode::warm),
                   .mode = StopMode::warm});
            if (jobs_.find(id) == jobs_.end()) return;  // finished synchronously (a spawn failure)
        }
        finish_job_if_done(id);
    }

    // A node of a restart job is ready again (ok) or did not come back.
    void job_node_done(Node& node, bool ok, const std::string& error) {
        const int id = node.restart_job;
        node.restart_job = 0;
        auto it = jobs_.find(id);
        if (it == jobs_.end()) return;
        RestartJob& job = it->second;
        job.in_flight.erase(&node);
        if (ok) {
            job.restarted.push_back(node.spec.name);
            emit({{"event", "restarted"}, {"job", id}, {"node", node.spec.name}, {"pid", node.pid}});
        } else {
            job.failed.push_back({{"node", node.spec.name}, {"error", error}});
            log_->error("{}: restart failed: {}", node.spec.name, error);
            if (!job.all_at_once) {
                // A rolling restart stops at the first node that does not come back: the rest keep running
                // the old way rather than all going down with, say, broken code.
                for (Node* rest : job.queue) {
                    job.skipped.push_back(rest->spec.name);
                    rest->next_spec.reset();  // it keeps running as it was, and restarts so after a crash
                }
                job.queue.clear();
            }
        }
        // Not from inside the caller's state change: the next node begins from the loop.
        loop_.after(std::chrono::milliseconds(0), [this, id] { advance_job(id); });
    }

    void finish_job_if_done(int id) {
        auto it = jobs_.find(id);
        if (it == jobs_.end() || !it->second.queue.empty() || !it->second.in_flight.empty()) return;
        RestartJob job = std::move(it->second);
        jobs_.erase(it);
        emit({{"event", "restart_done"},
              {"job", id},
              {"ok", job.failed.empty() && job.skipped.empty()},
              {"restarted", job.restarted},
              {"failed", job.failed},
              {"skipped", job.skipped}});
    }

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
            if (name == "NOTIFY_SOCKET" || name == "JOURNAL_STREAM" || name.starts_with("LISTEN_") ||
                name.starts_with("WATCHDOG_"))
                continue;
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
        for (const auto& entry : containment_->environment()) {  // the marker every descendant inherits
            auto eq = entry.find('=');
            env[entry.substr(0, eq)] = entry.substr(eq + 1);
        }
        std::vector<std::string> out;
        for (const auto& [name, value] : env) out.push_back(name + "=" + value);
        return out;
    }

    // --- the lifecycle table's side (supervisor/node_lifecycle.hpp) ---------------------------------------
    struct EventDetail {
        std::string reason{};  // for a failure report or a restart job: why; for ready: how it became ready
        StopPlan plan{};       // for stop and restart
        StopMode mode = StopMode::warm;
        bool clean_exit = false;  // for exited
    };

    static NodeFacts facts_of(const Node& node, bool clean_exit = false) {
        return {.reported = node.start_reported, .restarting = node.restart_job != 0, .clean_exit = clean_exit};
    }

    // One event of one node: the table says what follows. Returns false when the event means nothing now.
    bool apply(Node& node, NodeEvent event) { return apply(node, event, EventDetail{}); }
    bool apply(Node& node, NodeEvent event, const EventDetail& detail) {
        auto step = transition(node.state, event, facts_of(node, detail.clean_exit));
        if (!step) return false;
        perform(node, *step, detail);
        return true;
    }

    void perform(Node& node, const NodeStep& step, const EventDetail& detail) {
        const NodeState was = node.state;
        node.state = step.next;
        if (step.has(act_job_failed)) job_node_done(node, false, detail.reason);
        if (step.has(act_report_failed)) report_start_failure(node, detail.reason);
        if (step.has(act_report_ready)) announce_ready(node, detail.reason);
        if (step.has(act_release)) {
            if (node.lock) node.lock->remove();
            node.lock.reset();
        }
        if (step.has(act_emit_gone))
            emit({{"event", "gone"},
                  {"node", node.spec.name},
                  {"status", node.status},
                  {"seconds", was == NodeState::stopping ? seconds_since(node.stop_began) : 0.0}});
        if (step.has(act_cancel_restart)) {
            loop_.cancel(node.restart_timer);
            node.restart_timer = 0;
        }
        if (step.has(act_count_restart)) ++node.restarts;
        if (step.has(act_spawn)) spawn_node(node);
        if (step.has(act_schedule_restart)) schedule_restart(node);
        if (step.has(act_begin_stop)) begin_stop(node, detail.plan, detail.mode, was != NodeState::stopping);
        if (!active(node.state) && all_gone()) loop_.stop();
    }

    void spawn_node(Node& node) {
        if (node.next_spec) {
            node.spec = std::move(*node.next_spec);
            node.next_spec.reset();
            update_title();
        }
        const NodeSpec& spec = node.spec;
        node.started = Clock::now();
        node.program_exit.clear();
        node.quit_sent = node.kill_sent = false;
        node.plan.reset();
        std::optional<PidFile::Replacement> next_pidfile;  // the shim holds its lock from exec on
        try {
            next_pidfile = node.lock->prepare_write();
            std::error_code ec;
            std::filesystem::create_directories(spec.logfile.parent_path(), ec);
            node.log = open_log_file(spec.logfile);  // never through a planted symlink, never blocking on a FIFO
            struct stat st {};
            if (::fstat(node.log.get(), &st) == 0) node.log_start = static_cast<std::uintmax_t>(st.st_size);
            // The node's user owns its log, as it owns the new file its shim creates after a rotation.
            if (spec.run_as && st.st_uid == ::geteuid() && st.st_uid != spec.run_as->uid &&
                ::fchown(node.log.get(), spec.run_as->uid, spec.run_as->gid) != 0)
                log_->warn("{}: cannot chown its log {}: {}", spec.name, spec.logfile.string(), std::strerror(errno));

            SpawnOptions options;
            options.program = "/proc/self/exe";  // this very binary, even if the file was replaced meanwhile
            options.argv0 = "ccmulti";
            options.args = {node_shim_command, spec.name, std::to_string(next_pidfile->fd()),
                            std::to_string(::getpid())};
            options.args.insert(options.args.end(), {spec.logfile.string(), "--"});
            options.args.insert(options.args.end(), spec.argv.begin(), spec.argv.end());
            options.env = node_environment(spec);
            options.cwd = spec.cwd;
            options.stdout_fd = node.log.get();
            options.stderr_fd = node.log.get();
            options.new_process_group = true;
            options.parent_death_signal = master_death_signal;
            options.pass_fd = next_pidfile->fd();
            options.run_as = spec.run_as;
            // The shim takes these with sigwaitinfo; blocked from exec on, a `kill -HUP` the moment the new pid
            // is in the pid file cannot end it before it is ready for them.
            options.blocked_signals = node_shim_signals();
            UniqueFd cgroup_procs = containment_->prepare(spec.name);  // the node's own cgroup, when there is one
            options.cgroup_procs_fd = cgroup_procs.get();
            node.pid = spawn(options);
            containment_->started(spec.name, node.pid);
            node.log.reset();  // the shim owns the log now (and reopens it on SIGUSR1)
        } catch (const Error& e) {
            node.status = e.what();
            node.last_log_tail = log_tail(spec.logfile, node.log_start);
            log_->error("{}: {}", spec.name, e.what());
            // A first start is reported as failed; a restart keeps trying after the backoff, never silently.
            apply(node, NodeEvent::spawn_failed, {.reason = e.what()});
            return;
        }
        try {
            node.lock->commit(std::move(*next_pidfile), node.pid);
        } catch (const Error& e) {  // it runs, and its lock holds: only the file's text is behind (a full disk)
            log_->error("{}: cannot write its pid {} to {}: {}", spec.name, node.pid, spec.pidfile.string(), e.what());
        }
        log_->info("{}: started, pid {}, log {}", spec.name, node.pid, spec.logfile.string());
        if (node.start_timer) loop_.cancel(node.start_timer);
        node.start_timer = 0;
        if (!node.start_reported || node.restart_job)  // someone waits for it: `start`, or a restart
            node.start_timer = loop_.after(spec.start_timeout, [this, &node] { on_start_timeout(node); });
        if (!spec.ready_pattern.empty()) {
            try {
                node.log_watch = std::make_unique<LogWatch>(loop_, spec.logfile, node.log_start, spec.ready_pattern,
                                                            [this, &node] { on_ready_line(node); });
                node.log_watch->scan();  // it may have written the line already
                return;
            } catch (const Error& e) {
                log_->warn("{}: cannot watch its log for readiness ({}); counting it ready after {} up", spec.name,
                           e.what(), fmt_seconds(std::chrono::duration<double>(spec.start_secs).count()));
                node.log_watch.reset();
            }
        }
        if (spec.notifies) return;  // the native worker says READY=1 once it consumes, and only then is it ready
        node.ready_timer = loop_.after(spec.start_secs, [this, &node] {
            node.ready_timer = 0;
            apply(node, NodeEvent::ready,
                  {.reason = "up " + fmt_seconds(std::chrono::duration<double>(node.spec.start_secs).count())});
        });
    }

    void on_ready_line(Node& node) {
        // Called from inside the watch: drop it from the loop, not from under its own feet.
        loop_.after(std::chrono::milliseconds(0), [&node] { node.log_watch.reset(); });
        apply(node, NodeEvent::ready, {.reason = "its log says ready"});
    }

    // A node died on its own: start it again after the backoff delay, for ever.
    void schedule_restart(Node& node) {
        const auto uptime = Clock::now() - node.started;
        const auto delay = node.backoff.next_delay(uptime);
        node.restart_at = Clock::now() + delay;
        const double delay_s = std::chrono::duration<double>(delay).count();
        log_->error("{}: {} after {} up; restarting in {} (crash {} in a row{})", node.spec.name, node.status,
                    fmt_seconds(std::chrono::duration<double>(uptime).count()), fmt_seconds(delay_s),
                    node.backoff.attempts(),
                    delay >= node.backoff.policy().max * 4 / 5 ? ", at the backoff cap: it keeps crashing" : "");
        emit({{"event", "crashed"}, {"node", node.spec.name}, {"status", node.status}, {"restart_in", delay_s}});
        node.restart_timer = loop_.after(delay, [this, &node] {
            node.restart_timer = 0;
            log_->info("{}: restarting (restart {}, crash {} in a row)", node.spec.name, node.restarts + 1,
                       node.backoff.attempts());
            apply(node, NodeEvent::restart_due);
        });
    }

    static std::string fmt_seconds(double seconds) {
        char buffer[32];
        std::snprintf(buffer, sizeof buffer, "%.1fs", seconds);
        return buffer;
    }

    void announce_ready(Node& node, const std::string& how) {
        for (auto* timer : {&node.ready_timer, &node.start_timer}) {
            if (*timer) loop_.cancel(*timer);
            *timer = 0;
        }
        log_->info("{}: ready ({})", node.spec.name, how);
        if (node.restart_when_ready) {  // a SIGHUP that came while it was starting; after this readiness settles
            node.restart_when_ready = false;
            loop_.after(std::chrono::milliseconds(0), [this, &node] {
                if (node.state == NodeState::ready && !node.restart_job) restart({node.spec.name}, false, {});
            });
        }
        emit({{"event", "ready"},
              {"node", node.spec.name},
              {"pid", node.pid},
              {"log", node.spec.logfile},
              {"how", how}});
        if (node.restart_job) job_node_done(node, true, "");
        if (!node.start_reported) {
            node.start_reported = true;
            if (node.in_report)
                send_report({{"event", "ready"},
                             {"node", node.spec.name},
                             {"pid", node.pid},
                             {"log", node.spec.logfile},
                             {"how", how}});
        } else if (node.not_ready_reported) {
            log_->info("{}: ready after all, {} after it was started", node.spec.name,
                       fmt_seconds(seconds_since(node.started)));
        }
        node.not_ready_reported = false;
        maybe_finish_start_report();
    }

    // spec.start_timeout passed and the node is still starting: `start` (or the restart job) is told so, with the
    // node's last log lines (its reason: "broker unavailable: …"). The node stays: the master keeps it running,
    // and it becomes ready by itself once it can, as nodes do after a crash restart.
    void on_start_timeout(Node& node) {
        node.start_timer = 0;
        if (node.state != NodeState::starting) return;
        const std::string error =
            "not ready after " + fmt_seconds(std::chrono::duration<double>(node.spec.start_timeout).count());
        log_->warn("{}: {} (start_timeout); it stays supervised and becomes ready once it can", node.spec.name, error);
        if (node.restart_job) job_node_done(node, false, error);
        if (node.start_reported) return;
        node.start_reported = true;
        node.not_ready_reported = true;
        if (node.in_report && !report_done_) start_not_ready_ = true;
        json event = {{"event", "not_ready"},     {"node", node.spec.name},
                      {"pid", node.pid},          {"error", error},
                      {"log", node.spec.logfile}, {"log_tail", log_tail(node.spec.logfile, node.log_start)}};
        if (node.in_report) send_report(event);
        emit(event);
        maybe_finish_start_report();
    }

    void report_start_failure(Node& node, const std::string& error) {
        if (node.start_reported) return;
        node.start_reported = true;
        // Nodes added later do not change the master's exit code.
        if (!report_done_ && node.in_report) start_ok_ = false;
        json event = {{"event", "failed"},
                      {"node", node.spec.name},
                      {"error", error},
                      {"log", node.spec.logfile},
                      {"log_tail", log_tail(node.spec.logfile, node.log_start)}};
        if (node.in_report) send_report(event);
        emit(event);
        maybe_finish_start_report();
    }

    void send_report(const json& event) {
        if (report_done_) return;
        if (report_) report_(event);
    }

    void maybe_finish_start_report() {
        if (report_done_) return;
        for (const auto& node : nodes_)
            if (node->in_report && !node->start_reported) return;
        send_report(
            {{"event", "done"}, {"ok", start_ok_}, {"not_ready", start_not_ready_}, {"master_pid", ::getpid()}});
        // The master's own supervisor (systemd Type=notify, via the NOTIFY_SOCKET the master was started with and
        // did not pass on): the group counts as started once every node has reported.
        ::sd_notifyf(0, "READY=1\nMAINPID=%d\nSTATUS=%zu node(s) started", static_cast<int>(::getpid()), nodes_.size());
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
            if (auto it = fields.find("READY"); it != fields.end() && it->second == "1")
                apply(*node, NodeEvent::ready, {.reason = "READY=1"});
            if (auto it = fields.find("STOPPING"); it != fields.end() && it->second == "1")
                log_->info("{}: says it is stopping", node->spec.name);
            if (auto it = fields.find("STATUS"); it != fields.end())
                log_->info("{}: status: {}", node->spec.name, it->second);
            if (auto it = fields.find("CCMULTI_PROGRAM_EXIT"); it != fields.end() && message->pid == node->pid)
                node->program_exit = it->second;
            if (auto it = fields.find("CCMULTI_RESTART"); it != fields.end() && message->pid == node->pid) {
                if (node->state == NodeState::ready && !node->restart_job) {
                    log_->info("{}: {}: restarting it warm", node->spec.name, it->second);
                    restart({node->spec.name}, false, {});
                } else {  // starting, or being restarted already: once more when it is ready
                    log_->info("{}: {}: restarting it warm once it is ready", node->spec.name, it->second);
                    node->restart_when_ready = true;
                }
            }
        }
    }

    // SIGUSR1 (log rotation, etc/logrotate.d/ccmulti): the master's log, and every node's through its shim (the
    // program itself is not signalled: the shim owns the node's log file).
    void reopen_logs() {
        reopen_master_log(*log_);
        for (const auto& node : nodes_)
            if (alive(node->state) && ::kill(node->pid, SIGUSR1) != 0 && errno != ESRCH)
                log_->warn("{}: kill({}, SIGUSR1): {}", node->spec.name, node->pid, std::strerror(errno));
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

    void begin_stop(Node& node, StopPlan plan, StopMode mode, bool first_request) {
        if (first_request) {
            node.stop_began = Clock::now();
            for (auto* timer : {&node.ready_timer, &node.start_timer}) {
                if (*timer) loop_.cancel(*timer);
                *timer = 0;
            }
            if (mode == StopMode::warm) send_signal(node, SIGTERM, false);
        } else if (node.plan) {
            plan = merge_plans(*node.plan, plan);
        }
        node.plan = plan;
        for (auto* timer : {&node.quit_timer, &node.kill_timer, &node.give_up_timer}) {
            if (*timer) loop_.cancel(*timer);
            *timer = 0;
        }
        if (!node.quit_sent && mode != StopMode::kill && plan.quit_at != StopPlan::never) {
            if (plan.quit_at <= Clock::now()) {
                quit(node);
            } else {
                node.quit_timer = loop_.at(plan.quit_at, [this, &node] {
                    node.quit_timer = 0;
                    quit(node);
                });
            }
        }
        if (!node.kill_sent && plan.kill_at != StopPlan::never) {
            if (plan.kill_at <= Clock::now())
                kill_group(node);
            else
                node.kill_timer = loop_.at(plan.kill_at, [this, &node] {
                    node.kill_timer = 0;
                    kill_group(node);
                });
        }
        if (plan.give_up_at == StopPlan::never) return;  // a warm stop without a deadline: no escalation
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
            if (config_.foreground && !journal_) std::cout << text << std::endl;  // the journal has it already
        };
        if (shutdown_level_ == "none" && sig != SIGQUIT) {
            shutdown_level_ = "warm";
            ::sd_notify(0, "STOPPING=1");
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
        on_notify();  // a shim's last word (how its program ended) was sent before it exited
        for (;;) {
            siginfo_t info{};
            if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
                if (errno == EINTR) continue;
                return;  // ECHILD
            }
            if (info.si_pid == 0) return;
            const pid_t pid = info.si_pid;
            Node* node = find_by_pid(pid);
            if (node) {
                ::kill(-pid, SIGKILL);                    // stragglers of the group (a task's subprocesses)
                containment_->end(node->spec.name, pid);  // and whatever left the group (setsid, double fork)
            }
            int status = 0;
            while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            if (node) on_node_exit(*node, status);
        }
    }

    void on_node_exit(Node& node, int status) {
        for (auto* timer :
             {&node.ready_timer, &node.start_timer, &node.quit_timer, &node.kill_timer, &node.give_up_timer}) {
            if (*timer) loop_.cancel(*timer);
            *timer = 0;
        }
        node.log_watch.reset();
        // The program's own ending is the interesting one (the shim dies the same way, but never with a core).
        node.status = node.program_exit.empty() ? describe_status(status) : node.program_exit;
        node.last_log_tail = log_tail(node.spec.logfile, node.log_start);
        node.log.reset();
        const bool clean = asked_to_stop(status);
        auto step = transition(node.state, NodeEvent::exited, facts_of(node, clean));
        if (!step) return;  // not a live node's process (find_by_pid finds only those)
        const bool stopping = node.state == NodeState::stopping;
        const std::string took = stopping ? " after " + fmt_seconds(seconds_since(node.stop_began)) : "";
        switch (step->next) {
            case NodeState::starting:  // a requested restart: the new run keeps the pid-file lock
                log_->info("{}: stopped ({}){}; starting it again", node.spec.name, node.status, took);
                break;
            case NodeState::failed:
                log_->error("{}: {} before it was ready", node.spec.name, node.status);
                break;
            case NodeState::stopped:
                log_->info("{}: stopped ({}){}", node.spec.name, node.status, took);
                break;
            case NodeState::exited:
                // Exit code 0, or SIGTERM/SIGINT, that ccmulti did not send: `celery control shutdown`, `kill`,
                // `ccmulti stop` from the pid files while this master was not answering.
                log_->warn("{}: {} on its own, a clean stop that ccmulti did not ask for: not restarted",
                           node.spec.name, node.status);
                break;
            default:  // backoff: schedule_restart says when
                break;
        }
        perform(node, *step,
                {.reason = stopping ? "stopped before it was ready (" + node.status + ")"
                                    : node.status + " before it was ready"});
    }

    std::vector<NodeSpec> specs() const {
        std::vector<NodeSpec> out;
        for (const auto& node : nodes_) out.push_back(node->spec);
        return out;
    }

    // Nodes added with --watch are watched too; a watch that cannot be set up now (the inotify limit) is logged
    // and the watches stay as they were: the nodes run, unwatched.
    void set_watches() {
        try {
            code_watch_->set_nodes(specs());
        } catch (const std::exception& e) {
            log_->error("watch: {} (the watches stay as they were)", e.what());
        }
    }

    bool all_gone() const {
        for (const auto& node : nodes_)
            if (active(node->state)) return false;
        return true;
    }

    const MasterConfig& config_;
    PidFile master_lock_;
    ReportSink report_;
    bool report_done_ = false;
    bool start_ok_ = true;
    bool start_not_ready_ = false;  // a node of the start report was still starting at its start_timeout
    bool journal_ = false;          // the master logs to the journal (stderr), which also gets stdout
    std::string shutdown_level_ = "none";
    EventLoop loop_;
    std::shared_ptr<spdlog::logger> log_;
    std::unique_ptr<NotifySocket> notify_;
    std::unique_ptr<ControlServer> control_;
    std::unique_ptr<CodeWatch> code_watch_;
    std::unique_ptr<Containment> containment_;
    std::vector<std::unique_ptr<Node>> nodes_;
    std::map<int, std::function<void(const json&)>> listeners_;
    int next_listener_ = 1;
    std::map<int, RestartJob> jobs_;
    int next_job_ = 1;
    Clock::time_point started_ = Clock::now();
};

}  // namespace

int run_master(const MasterConfig& config, GroupLocks locks, ReportSink report) {
    Master master(config, std::move(locks), std::move(report));
    return master.run();
}

}  // namespace ccmulti::supervisor
