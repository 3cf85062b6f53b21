// Restart and reload jobs: nodes one at a time (or all at once for `restart --all`), the next once the
// previous is back, stopping at the first that does not come back. A reload replaces a node start-before-stop
// (its successor is spawned beside it, the pid file handed over once the successor is ready, and only then
// the old process gets its warm stop); see node_lifecycle.hpp for the states.
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <utility>


#include "supervisor/master_impl.hpp"
#include "platform/systemd_notify.hpp"
#include "supervisor/start_report.hpp"
#include "util/error.hpp"
#include "util/strings.hpp"

namespace ccmulti::supervisor {

using nlohmann::json;

int Master::new_job(bool reload, bool all_at_once) {
    const int id = next_job_++;
    RestartJob& job = jobs_[id];
    job.reload = reload;
    job.all_at_once = all_at_once;
    return id;
}

void Master::queue_nodes(int id, const std::vector<MasterNode*>& nodes) {
    RestartJob& job = jobs_[id];
    for (MasterNode* node : nodes) job.queue.push_back(node);
    // The events follow the reply that names the job, so the caller can subscribe first: begin from the loop.
    loop_.after(std::chrono::milliseconds(0), [this, id] { advance_job(id); });
}

MasterControl::RestartResult Master::restart(const std::vector<std::string>& names, bool all_at_once,
                                             const std::vector<NodeSpec>& specs) {
    RestartResult result;
    std::vector<MasterNode*> targets;
    if (names.empty()) {
        for (auto& node : nodes_)
            if (active(node->state)) targets.push_back(node.get());
    } else {
        for (const auto& name : names) {
            MasterNode* found = find(name);
            if (found && active(found->state))
                targets.push_back(found);
            else
                result.not_running.push_back(found ? found->spec.name : name);
        }
    }
    std::vector<MasterNode*> accepted;
    for (MasterNode* node : targets) {
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
    result.job = new_job(false, all_at_once);
    log_->info("control: {} restart of {}", all_at_once ? "all-at-once" : "rolling", join(result.restarting, " "));
    queue_nodes(result.job, accepted);
    return result;
}

MasterControl::ReloadResult Master::reload(const std::vector<std::string>& names, const std::string& reason,
                                           ReloadKind kind) {
    ReloadResult result;
    result.job = new_job(true, false);
    jobs_[result.job].extra["reason"] = reason;
    reloading_begins();
    if (shutdown_level_ != "none") {  // nothing starts any more
        jobs_[result.job].extra["config_errors"] = json::array({"the group is shutting down: nothing was changed"});
        queue_nodes(result.job, {});
        return result;
    }
    if (kind != ReloadKind::code && !config_.invocation.empty()) {
        // The specs come back from the planner; the job's nodes are known then.
        PendingReload request{result.job, names, reason, kind == ReloadKind::everything};
        if (planner_)
            plans_waiting_.push_back(std::move(request));
        else
            start_plan(std::move(request));
        return result;
    }
    std::vector<MasterNode*> targets;
    for (const auto& name : names) {
        MasterNode* found = find(name);
        if (found)
            targets.push_back(found);
        else
            result.unknown.push_back(name);
    }
    if (names.empty())
        for (auto& node : nodes_)
            if (active(node->state)) targets.push_back(node.get());
    std::vector<std::string> named;
    for (MasterNode* node : targets) named.push_back(node->spec.name);
    log_->info("reload ({}): replacing {}", reason, named.empty() ? std::string("nothing") : join(named, " "));
    jobs_[result.job].extra["unknown"] = result.unknown;
    queue_nodes(result.job, targets);
    return result;
}

void Master::advance_job(int id) {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return;
    RestartJob& job = it->second;
    while (!job.queue.empty() && (job.all_at_once || job.in_flight.empty())) {
        MasterNode* node = job.queue.front();
        job.queue.pop_front();
        if (!active(node->state) || node->state == NodeState::stopping || node->state == NodeState::replacing ||
            (node->restart_job && node->restart_job != id)) {
            job.skipped.push_back(node->spec.name);  // gone, stopping, or in another job
            if (!node->restart_job) node->next_spec.reset();
            continue;
        }
        job.in_flight.insert(node);
        node->restart_job = id;
        node->job_old_pid = alive(node->state) ? node->run.pid : 0;
        if (job.reload) {
            const bool overlap = node->state == NodeState::ready && facts_of(*node).can_overlap;
            emit({{"event", "replacing"}, {"job", id}, {"node", node->spec.name}, {"pid", node->job_old_pid}});
            log_->info("{}: replacing pid {}: {}", node->spec.name, node->job_old_pid,
                       overlap ? "its replacement starts first" : "stop, then start (it cannot run twice)");
            apply(*node, NodeEvent::replace,
                  {.reason = "reload",
                   .plan = plan_stop(MasterClock::now(), node->spec.stop_timeout, StopMode::warm),
                   .mode = StopMode::warm});
        } else {
            emit({{"event", "restarting"}, {"job", id}, {"node", node->spec.name}});
            if (node->state == NodeState::backoff)
                log_->info("{}: restarting now (requested; was in backoff)", node->spec.name);
            else
                log_->info("{}: restarting (requested): warm stop first", node->spec.name);
            apply(*node, NodeEvent::restart,
                  {.reason = "restart requested",
                   .plan = plan_stop(MasterClock::now(), node->spec.stop_timeout, StopMode::warm),
                   .mode = StopMode::warm});
        }
        if (jobs_.find(id) == jobs_.end()) return;  // finished synchronously (a spawn failure)
    }
    finish_job_if_done(id);
}

// A node of a job is ready again (ok) or did not come back.
void Master::job_node_done(MasterNode& node, bool ok, const std::string& error) {
    const int id = node.restart_job;
    node.restart_job = 0;
    if (std::string again = std::exchange(node.reload_again, ""); !again.empty()) {
        // After this job's events: the next reload is a job of its own.
        loop_.after(std::chrono::milliseconds(0), [this, name = node.spec.name, again] {
            on_code_change({name}, again + " (changed again while it was being replaced)");
        });
    }
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return;
    RestartJob& job = it->second;
    job.in_flight.erase(&node);
    if (job.adding.erase(&node)) {  // a node the reload added: nothing of it was replaced
        if (ok) {
            log_->info("{}: added by the reload: ready (pid {})", node.spec.name, node.run.pid);
            emit({{"event", "added"}, {"job", id}, {"node", node.spec.name}, {"pid", node.run.pid}});
        } else {
            log_->error("{}: added by the reload, but not ready: {}", node.spec.name, error);
            job.failed.push_back({{"node", node.spec.name},
                                  {"error", error},
                                  {"added", true},
                                  {"log_tail", log_tail(node.spec.logfile, node.run.log_start)}});
        }
        loop_.after(std::chrono::milliseconds(0), [this, id] { advance_job(id); });
        return;
    }
    if (ok) {
        if (job.reload) {
            node.reload_error.clear();
            node.reload_log_tail.clear();
            job.restarted.push_back({{"node", node.spec.name}, {"old_pid", node.job_old_pid}, {"pid", node.run.pid}});
            log_->info("{}: replaced pid {} → pid {}", node.spec.name, node.job_old_pid, node.run.pid);
            emit({{"event", "replaced"},
                  {"job", id},
                  {"node", node.spec.name},
                  {"old_pid", node.job_old_pid},
                  {"pid", node.run.pid}});
        } else {
            job.restarted.push_back(node.spec.name);
            emit({{"event", "restarted"}, {"job", id}, {"node", node.spec.name}, {"pid", node.run.pid}});
        }
    } else {
        json failure = {{"node", node.spec.name}, {"error", error}};
        if (job.reload) {
            if (node.reload_error.empty()) {  // stop-then-start: the node itself did not come back
                node.reload_error = error;
                node.reload_log_tail = log_tail(node.spec.logfile, node.run.log_start);
            }
            failure["log_tail"] = node.reload_log_tail;
            log_->error("{}: reload failed: {}{}", node.spec.name, error,
                        node.state == NodeState::ready ? " (pid " + std::to_string(node.run.pid) + " serves on)" : "");
        } else {
            log_->error("{}: restart failed: {}", node.spec.name, error);
        }
        job.failed.push_back(failure);
        if (!job.all_at_once) {
            // A rolling restart or reload stops at the first node that does not come back: the rest keep running
            // the old way rather than all going down with, say, broken code.
            for (MasterNode* rest : job.queue) {
                job.skipped.push_back(rest->spec.name);
                rest->next_spec.reset();  // it keeps running as it was, and restarts so after a crash
            }
            job.queue.clear();
        }
    }
    // Not from inside the caller's state change: the next node begins from the loop.
    loop_.after(std::chrono::milliseconds(0), [this, id] { advance_job(id); });
}

void Master::finish_job_if_done(int id) {
    auto it = jobs_.find(id);
    if (it == jobs_.end() || !it->second.queue.empty() || !it->second.in_flight.empty()) return;
    RestartJob job = std::move(it->second);
    jobs_.erase(it);
    json done = {{"event", job.reload ? "reload_done" : "restart_done"},
                 {"job", id},
                 {"ok", job.failed.empty() && job.skipped.empty() && !job.extra.contains("config_errors") &&
                            job.extra.value("unknown", json::array()).empty()},
                 {job.reload ? "replaced" : "restarted", job.restarted},
                 {"failed", job.failed},
                 {"skipped", job.skipped}};
    if (job.reload) {
        done.update(job.extra);
        reloading_ends();
    }
    emit(done);
}

// systemd (Type=notify): RELOADING=1 with the time it began, and READY=1 once every reload under way is done.
void Master::reloading_begins() {
    if (reloads_under_way_++ > 0) return;
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    const unsigned long long usec = static_cast<unsigned long long>(now.tv_sec) * 1'000'000ULL +
                                    static_cast<unsigned long long>(now.tv_nsec) / 1000;
    platform::systemd_notify(fmt::format("RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading", usec));
}

void Master::reloading_ends() {
    if (reloads_under_way_ == 0 || --reloads_under_way_ > 0) return;
    platform::systemd_notify(fmt::format("READY=1\nSTATUS={} node(s), reloaded", nodes_.size()));
}

// --- the successor -------------------------------------------------------------------------------------------

void Master::spawn_successor(MasterNode& node) {
    node.successor_spec = node.next_spec ? *node.next_spec : node.spec;
    node.successor = std::make_unique<NodeRun>();
    try {
        spawn_run(node, node.successor_spec, *node.successor, true);
    } catch (const Error& e) {
        log_->error("{}: its replacement cannot start: {}", node.spec.name, e.what());
        node.successor->pid = 0;
        apply(node, NodeEvent::successor_failed, {.reason = e.what()});
        return;
    }
    log_->info("{}: replacement started beside pid {}: pid {}", node.spec.name, node.run.pid, node.successor->pid);
    arm_readiness(node, true);
}

// The successor is ready: it is the node now (its pid in the pid file, under the node's lock); the old
// process retires with a warm stop by the node's stop plan.
void Master::promote_successor(MasterNode& node) {
    NodeRun& next = *node.successor;
    cancel_timers(next);
    try {
        node.lock->commit(std::move(*next.pidfile), next.pid);
    } catch (const Error& e) {  // it runs, and its lock holds: only the file's text is behind (a full disk)
        log_->error("{}: cannot write its pid {} to {}: {}", node.spec.name, next.pid, node.spec.pidfile.string(),
                    e.what());
    }
    next.pidfile.reset();
    node.spec = node.successor_spec;
    node.next_spec.reset();
    std::swap(node.run, next);
    node.retiring.push_back(std::move(next));
    node.successor.reset();
    node.backoff.reset();
    specs_changed();
    NodeRun& old = node.retiring.back();
    log_->info("{}: pid {} is ready (replacement); warm stop of the old pid {}", node.spec.name, node.run.pid, old.pid);
    begin_stop(node, old, plan_stop(MasterClock::now(), node.spec.stop_timeout, StopMode::warm), StopMode::warm, true);
    if (node.restart_job) job_node_done(node, true, "");
}

// The successor failed (or the node is being stopped): its whole process group goes now; its cgroup and what
// escaped it when the reaper sees its shim exit. The node's own process is not touched.
void Master::end_successor(MasterNode& node) {
    if (!node.successor) return;
    NodeRun run = std::move(*node.successor);
    node.successor.reset();
    cancel_timers(run);
    run.pidfile.reset();   // its ".pid.new" goes: the node's pid file never named it
    if (!run.pid) return;  // reaped already
    log_->info("{}: killing its replacement pid {}", node.spec.name, run.pid);
    run.stop_began = MasterClock::now();
    node.retiring.push_back(std::move(run));
    kill_group(node, node.retiring.back());
}

// The old process died while its successor was starting: the successor is the node's process now, as a node
// restarting (the job learns whether it comes up).
void Master::adopt_successor(MasterNode& node) {
    NodeRun next = std::move(*node.successor);
    node.successor.reset();
    cancel_timers(next);
    try {
        node.lock->commit(std::move(*next.pidfile), next.pid);
    } catch (const Error& e) {
        log_->error("{}: cannot write its pid {} to {}: {}", node.spec.name, next.pid, node.spec.pidfile.string(),
                    e.what());
    }
    next.pidfile.reset();
    node.spec = node.successor_spec;
    node.next_spec.reset();
    node.run = std::move(next);
    ++node.restarts;
    specs_changed();
    arm_readiness(node, false);
}

}  // namespace ccmulti::supervisor
