// The master's side of the lifecycle table (supervisor/node_lifecycle.hpp) and the processes it runs for a
// node: spawning a node's shim (or a successor beside it), readiness, the stop plan's escalation, the reaper.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "platform/proc.hpp"
#include "platform/signals.hpp"
#include "platform/spawn.hpp"
#include "supervisor/master_impl.hpp"
#include "supervisor/node_shim.hpp"
#include "supervisor/start_report.hpp"
#include "util/error.hpp"
#include "util/strings.hpp"

namespace ccmulti::supervisor {

using nlohmann::json;

NodeFacts Master::facts_of(const MasterNode& node, bool clean_exit) {
    return {.reported = node.start_reported,
            .restarting = node.restart_job != 0,
            .clean_exit = clean_exit,
            .can_overlap = (node.next_spec ? *node.next_spec : node.spec).can_overlap};
}

// One event of one node: the table says what follows. Returns false when the event means nothing now.
bool Master::apply(MasterNode& node, NodeEvent event, const EventDetail& detail) {
    auto step = transition(node.state, event, facts_of(node, detail.clean_exit));
    if (!step) return false;
    perform(node, *step, detail);
    return true;
}

void Master::perform(MasterNode& node, const NodeStep& step, const EventDetail& detail) {
    const NodeState was = node.state;
    node.state = step.next;
    if (step.has(act_reload_failed)) {
        node.reload_error = detail.reason;
        node.reload_log_tail = node.successor ? log_tail(node.successor_spec.logfile, node.successor->log_start)
                                              : std::vector<std::string>{};
    }
    if (step.has(act_end_successor)) end_successor(node);
    if (step.has(act_adopt_successor)) adopt_successor(node);
    if (step.has(act_job_failed)) job_node_done(node, false, detail.reason);
    if (step.has(act_report_failed)) on_start_failure(node, detail.reason);
    if (step.has(act_report_ready)) announce_ready(node, detail.reason);
    if (step.has(act_release)) {
        if (node.lock) node.lock->remove();
        node.lock.reset();
    }
    if (step.has(act_emit_gone)) emit_gone(node, node.run.stop_began, was == NodeState::stopping);
    if (step.has(act_cancel_restart)) {
        loop_.cancel(node.restart_timer);
        node.restart_timer = 0;
    }
    if (step.has(act_count_restart)) ++node.restarts;
    if (step.has(act_spawn)) spawn_node(node);
    if (step.has(act_spawn_successor)) spawn_successor(node);
    if (step.has(act_promote)) promote_successor(node);
    if (step.has(act_schedule_restart)) schedule_restart(node);
    if (step.has(act_begin_stop)) begin_stop(node, node.run, detail.plan, detail.mode, was != NodeState::stopping);
    if (!active(node.state) && all_gone()) loop_.stop();
}

std::vector<std::string> Master::node_environment(const NodeSpec& spec, const std::string& unit) const {
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
    for (const auto& entry : containment_->environment(unit)) {  // the markers every descendant inherits
        auto eq = entry.find('=');
        env[entry.substr(0, eq)] = entry.substr(eq + 1);
    }
    std::vector<std::string> out;
    for (const auto& [name, value] : env) out.push_back(name + "=" + value);
    return out;
}

// A containment unit no other process of the node uses: its name, else "name~1", "name~2"…
std::string Master::free_unit(const MasterNode& node) const {
    std::set<std::string> used;
    if (alive(node.state)) used.insert(node.run.unit);
    if (node.successor) used.insert(node.successor->unit);
    for (const auto& old : node.retiring) used.insert(old.unit);
    std::string unit = node.spec.name;
    for (int n = 1; used.count(unit); ++n) unit = node.spec.name + "~" + std::to_string(n);
    return unit;
}

// Starts a shim running `spec` into `run`. A successor's pid file is prepared but not committed: the node's
// file names its serving process until the successor takes over. Throws Error.
pid_t Master::spawn_run(MasterNode& node, const NodeSpec& spec, NodeRun& run, bool successor) {
    run.started = MasterClock::now();
    run.program_exit.clear();
    run.quit_sent = run.kill_sent = false;
    run.plan.reset();
    run.unit = free_unit(node);
    PidFile::Replacement next_pidfile = node.lock->prepare_write();  // the shim holds its lock from exec on
    std::error_code ec;
    std::filesystem::create_directories(spec.logfile.parent_path(), ec);
    node.log = open_log_file(spec.logfile);  // never through a planted symlink, never blocking on a FIFO
    struct stat st {};
    if (::fstat(node.log.get(), &st) == 0) run.log_start = static_cast<std::uintmax_t>(st.st_size);
    // The node's user owns its log, as it owns the new file its shim creates after a rotation.
    if (spec.run_as && st.st_uid == ::geteuid() && st.st_uid != spec.run_as->uid &&
        ::fchown(node.log.get(), spec.run_as->uid, spec.run_as->gid) != 0)
        log_->warn("{}: cannot chown its log {}: {}", spec.name, spec.logfile.string(), std::strerror(errno));

    SpawnOptions options;
    options.program = "/proc/self/exe";  // this very binary, even if the file was replaced meanwhile
    options.argv0 = "ccmulti";
    options.args = {node_shim_command, spec.name, std::to_string(next_pidfile.fd()), std::to_string(::getpid())};
    options.args.insert(options.args.end(), {spec.logfile.string(), "--"});
    options.args.insert(options.args.end(), spec.argv.begin(), spec.argv.end());
    options.env = node_environment(spec, run.unit);
    options.cwd = spec.cwd;
    options.stdout_fd = node.log.get();
    options.stderr_fd = node.log.get();
    options.new_process_group = true;
    options.parent_death_signal = master_death_signal;
    options.pass_fd = next_pidfile.fd();
    options.run_as = spec.run_as;
    // The shim takes these with sigwaitinfo; blocked from exec on, a `kill -HUP` the moment the new pid
    // is in the pid file cannot end it before it is ready for them.
    options.blocked_signals = node_shim_signals();
    UniqueFd cgroup_procs = containment_->prepare(run.unit);  // the node's own cgroup, when there is one
    options.cgroup_procs_fd = cgroup_procs.get();
    run.pid = spawn(options);
    containment_->started(run.unit, run.pid);
    node.log.reset();  // the shim owns the log now (and reopens it on SIGUSR1)
    if (successor) {
        run.pidfile.emplace(std::move(next_pidfile));
    } else {
        try {
            node.lock->commit(std::move(next_pidfile), run.pid);
        } catch (const Error& e) {  // it runs, and its lock holds: only the file's text is behind (a full disk)
            log_->error("{}: cannot write its pid {} to {}: {}", spec.name, run.pid, spec.pidfile.string(), e.what());
        }
    }
    return run.pid;
}

void Master::spawn_node(MasterNode& node) {
    if (node.next_spec) {
        node.spec = std::move(*node.next_spec);
        node.next_spec.reset();
        specs_changed();
    }
    try {
        spawn_run(node, node.spec, node.run, false);
    } catch (const Error& e) {
        node.status = e.what();
        node.last_log_tail = log_tail(node.spec.logfile, node.run.log_start);
        log_->error("{}: {}", node.spec.name, e.what());
        // A first start is reported as failed; a restart keeps trying after the backoff, never silently.
        apply(node, NodeEvent::spawn_failed, {.reason = e.what()});
        return;
    }
    log_->info("{}: started, pid {}, log {}", node.spec.name, node.run.pid, node.spec.logfile.string());
    arm_readiness(node, false);
}

// Readiness of the node's process (or its successor's): start_timeout, then READY=1, the log's ready line or
// start_secs up.
void Master::arm_readiness(MasterNode& node, bool successor) {
    NodeRun& run = successor ? *node.successor : node.run;
    const NodeSpec& spec = successor ? node.successor_spec : node.spec;
    if (run.start_timer) loop_.cancel(run.start_timer);
    run.start_timer = 0;
    if (successor)
        run.start_timer = loop_.after(spec.start_timeout, [this, &node] { on_successor_timeout(node); });
    else if (!node.start_reported || node.restart_job)  // someone waits for it: `start`, or a restart
        run.start_timer = loop_.after(spec.start_timeout, [this, &node] { on_start_timeout(node); });
    if (!spec.ready_pattern.empty()) {
        try {
            run.log_watch = std::make_unique<LogWatch>(loop_, spec.logfile, run.log_start, spec.ready_pattern,
                                                       [this, &node, successor] { on_ready_line(node, successor); });
            run.log_watch->scan();  // it may have written the line already
            return;
        } catch (const Error& e) {
            log_->warn("{}: cannot watch its log for readiness ({}); counting it ready after {} up", spec.name,
                       e.what(), fmt_seconds(std::chrono::duration<double>(spec.start_secs).count()));
            run.log_watch.reset();
        }
    }
    if (spec.notifies) return;  // the native worker says READY=1 once it consumes, and only then is it ready
    const std::string how = "up " + fmt_seconds(std::chrono::duration<double>(spec.start_secs).count());
    run.ready_timer = loop_.after(spec.start_secs, [this, &node, successor, how] {
        if (successor) {
            if (node.successor) node.successor->ready_timer = 0;
            apply(node, NodeEvent::successor_ready, {.reason = how});
        } else {
            node.run.ready_timer = 0;
            apply(node, NodeEvent::ready, {.reason = how});
        }
    });
}

void Master::on_ready_line(MasterNode& node, bool successor) {
    // Called from inside the watch: drop it from the loop, not from under its own feet.
    loop_.after(std::chrono::milliseconds(0), [&node, successor] {
        if (successor && node.successor)
            node.successor->log_watch.reset();
        else if (!successor)
            node.run.log_watch.reset();
    });
    apply(node, successor ? NodeEvent::successor_ready : NodeEvent::ready, {.reason = "its log says ready"});
}

// spec.start_timeout passed and the node is still starting: `start` (or the restart job) is told so, with the
// node's last log lines (its reason: "broker unavailable: …"). The node stays: the master keeps it running,
// and it becomes ready by itself once it can, as nodes do after a crash restart.
void Master::on_start_timeout(MasterNode& node) {
    node.run.start_timer = 0;
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
                  {"pid", node.run.pid},      {"error", error},
                  {"log", node.spec.logfile}, {"log_tail", log_tail(node.spec.logfile, node.run.log_start)}};
    if (node.in_report) send_report(event);
    emit(event);
    maybe_finish_start_report();
}

// A successor not ready by its start_timeout is a failed reload: unlike a node's own start, nobody serves
// less because of it, so it is not kept waiting.
void Master::on_successor_timeout(MasterNode& node) {
    if (!node.successor) return;
    node.successor->start_timer = 0;
    const std::string error =
        "not ready after " + fmt_seconds(std::chrono::duration<double>(node.successor_spec.start_timeout).count());
    apply(node, NodeEvent::successor_failed, {.reason = error});
}

// A node died on its own: start it again after the backoff delay, for ever.
void Master::schedule_restart(MasterNode& node) {
    const auto uptime = MasterClock::now() - node.run.started;
    const auto delay = node.backoff.next_delay(uptime);
    node.restart_at = MasterClock::now() + delay;
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

void Master::cancel_timers(NodeRun& run) {
    for (auto* timer : {&run.ready_timer, &run.start_timer, &run.quit_timer, &run.kill_timer, &run.give_up_timer}) {
        if (*timer) loop_.cancel(*timer);
        *timer = 0;
    }
    if (run.log_watch) {
        // Perhaps called from inside the watch's own callback (a ready line promoting a successor): dropped from
        // the loop on its next turn, not from under its own feet. A watch that matched never calls back again.
        std::shared_ptr<LogWatch> done(std::move(run.log_watch));
        loop_.after(std::chrono::milliseconds(0), [done] {});
    }
}

void Master::send_signal(MasterNode& node, NodeRun& run, int sig, bool whole_group) {
    // The pid is our child and not reaped yet (we reap it only in reap()), so it cannot have been
    // recycled: signalling it, or the group it leads, is safe.
    if (::kill(whole_group ? -run.pid : run.pid, sig) != 0 && errno != ESRCH)
        log_->warn("{}: kill({}, SIG{}): {}", node.spec.name, whole_group ? -run.pid : run.pid, signal_name(sig),
                   std::strerror(errno));
    log_->info("{}: sent SIG{} to {}", node.spec.name, signal_name(sig),
               whole_group ? "its process group " + std::to_string(run.pid) : "pid " + std::to_string(run.pid));
    emit({{"event", "signal"}, {"node", node.spec.name}, {"signal", signal_name(sig)}, {"pid", run.pid}});
}

void Master::begin_stop(MasterNode& node, NodeRun& run, StopPlan plan, StopMode mode, bool first_request) {
    if (first_request) {
        run.stop_began = MasterClock::now();
        for (auto* timer : {&run.ready_timer, &run.start_timer}) {
            if (*timer) loop_.cancel(*timer);
            *timer = 0;
        }
        if (mode == StopMode::warm) send_signal(node, run, SIGTERM, false);
    } else if (run.plan) {
        plan = merge_plans(*run.plan, plan);
    }
    run.plan = plan;
    for (auto* timer : {&run.quit_timer, &run.kill_timer, &run.give_up_timer}) {
        if (*timer) loop_.cancel(*timer);
        *timer = 0;
    }
    if (!run.quit_sent && mode != StopMode::kill && plan.quit_at != StopPlan::never) {
        if (plan.quit_at <= MasterClock::now()) {
            quit(node, run);
        } else {
            run.quit_timer = loop_.at(plan.quit_at, [this, &node, &run] {
                run.quit_timer = 0;
                quit(node, run);
            });
        }
    }
    if (!run.kill_sent && plan.kill_at != StopPlan::never) {
        if (plan.kill_at <= MasterClock::now())
            kill_group(node, run);
        else
            run.kill_timer = loop_.at(plan.kill_at, [this, &node, &run] {
                run.kill_timer = 0;
                kill_group(node, run);
            });
    }
    if (plan.give_up_at == StopPlan::never) return;  // a warm stop without a deadline: no escalation
    run.give_up_timer = loop_.at(plan.give_up_at, [this, &node, &run] {
        run.give_up_timer = 0;
        auto stat = read_proc_stat(run.pid);
        std::string error = "pid " + std::to_string(run.pid) + " is still there " +
                            fmt_seconds(std::chrono::duration<double>(kill_grace).count()) + " after SIGKILL" +
                            (stat ? ", state " + describe_state(stat->state) : "");
        log_->error("{}: {}", node.spec.name, error);
        emit({{"event", "stuck"}, {"node", node.spec.name}, {"error", error}});
    });
}

void Master::quit(MasterNode& node, NodeRun& run) {
    if (run.quit_sent || !run.pid) return;
    run.quit_sent = true;
    send_signal(node, run, SIGQUIT, false);
}

void Master::kill_group(MasterNode& node, NodeRun& run) {
    if (run.kill_sent || !run.pid) return;
    run.kill_sent = true;
    run.quit_sent = true;
    send_signal(node, run, SIGKILL, true);
}

// The one reaper. WNOWAIT first: while a node's leader is an unreaped zombie its pid (and so its
// process group id) cannot be reused, so SIGKILLing what is left of its group is safe; then reap.
void Master::reap() {
    on_notify();  // a shim's last word (how its program ended) was sent before it exited
    for (;;) {
        siginfo_t info{};
        if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
            if (errno == EINTR) continue;
            return;  // ECHILD
        }
        if (info.si_pid == 0) return;
        const pid_t pid = info.si_pid;
        Found found = find_by_pid(pid);
        if (found.node) {
            ::kill(-pid, SIGKILL);                    // stragglers of the group (a task's subprocesses)
            containment_->end(found.run->unit, pid);  // and whatever left the group (setsid, double fork)
        }
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        if (planner_ && planner_->pid == pid) {
            planner_->status = status;
            maybe_finish_plan();
        }
        if (!found.node) continue;
        switch (found.role) {
            case Role::node:
                on_node_exit(*found.node, status);
                break;
            case Role::successor:
                on_successor_exit(*found.node, status);
                break;
            case Role::retiring:
                on_retired_exit(*found.node, *found.run, status);
                break;
        }
    }
}

void Master::on_node_exit(MasterNode& node, int status) {
    cancel_timers(node.run);
    // The program's own ending is the interesting one (the shim dies the same way, but never with a core).
    node.status = node.run.program_exit.empty() ? describe_exit(status) : node.run.program_exit;
    node.last_log_tail = log_tail(node.spec.logfile, node.run.log_start);
    node.log.reset();
    const bool clean = asked_to_stop(status);
    auto step = transition(node.state, NodeEvent::exited, facts_of(node, clean));
    if (!step) return;  // not a live node's process (find_by_pid finds only those)
    const bool stopping = node.state == NodeState::stopping;
    const std::string took = stopping ? " after " + fmt_seconds(seconds_since(node.run.stop_began)) : "";
    if (node.state == NodeState::replacing) {
        log_->warn("{}: pid {} {} while its replacement was starting: the replacement takes over", node.spec.name,
                   node.run.pid, node.status);
    } else {
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
    }
    perform(node, *step,
            {.reason = stopping ? "stopped before it was ready (" + node.status + ")"
                                : node.status + " before it was ready"});
}

// The successor died before it was ready: the reload failed, the node serves on.
void Master::on_successor_exit(MasterNode& node, int status) {
    NodeRun& run = *node.successor;
    cancel_timers(run);
    const std::string how = run.program_exit.empty() ? describe_exit(status) : run.program_exit;
    run.pid = 0;  // reaped: end_successor has nothing left to kill
    apply(node, NodeEvent::successor_failed, {.reason = how + " before it was ready"});
}

// A replaced process has finished its warm stop (or was killed): it was not the node any more.
void Master::on_retired_exit(MasterNode& node, NodeRun& run, int status) {
    cancel_timers(run);
    const std::string how = run.program_exit.empty() ? describe_exit(status) : run.program_exit;
    log_->info("{}: old pid {} stopped ({}) after {}", node.spec.name, run.pid, how,
               fmt_seconds(seconds_since(run.stop_began)));
    emit({{"event", "retired"}, {"node", node.spec.name}, {"pid", run.pid}, {"status", how}});
    node.retiring.remove_if([&run](const NodeRun& r) { return &r == &run; });
    if (node.gone_pending && node.retiring.empty() && !alive(node.state))
        emit_gone(node, node.gone_stop_began, true);
    if (all_gone()) loop_.stop();
}

// The node is gone once its own process and every replaced one are: until then a `stop --wait` keeps waiting.
void Master::emit_gone(MasterNode& node, MasterClock::time_point stop_began, bool stopping) {
    if (!node.retiring.empty()) {
        node.gone_pending = true;
        node.gone_stop_began = stop_began;
        return;
    }
    node.gone_pending = false;
    emit({{"event", "gone"},
          {"node", node.spec.name},
          {"status", node.status},
          {"seconds", stopping ? seconds_since(stop_began) : 0.0}});
}

}  // namespace ccmulti::supervisor
