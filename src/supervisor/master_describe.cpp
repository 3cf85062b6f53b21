// What the master tells: `status` (describe), the start report and readiness events, and what nodes tell it on
// the notify socket (READY=1, STATUS=, how a program ended, a restart asked for by SIGHUP to a node's pid).
#include <unistd.h>

#include <algorithm>
#include <map>


#include "platform/proc.hpp"
#include "platform/proc_table.hpp"
#include "platform/systemd_notify.hpp"
#include "supervisor/master_impl.hpp"
#include "supervisor/start_report.hpp"

namespace ccmulti::supervisor {

using nlohmann::json;

json Master::describe_node(const MasterNode& node, std::uint64_t rss) const {
    const bool running = alive(node.state);
    json entry = {{"name", node.spec.name},
                  {"state", std::string(state_name(node.state))},
                  {"pid", running ? json(node.run.pid) : json(nullptr)},
                  {"pidfile", node.spec.pidfile},
                  {"logfile", node.spec.logfile},
                  {"uptime", running ? seconds_since(node.run.started) : 0.0},
                  {"restarts", node.restarts},
                  {"queues", node.spec.queues},
                  {"concurrency", node.spec.concurrency > 0 ? json(node.spec.concurrency) : json(nullptr)},
                  {"rss", rss}};
    if (!node.status.empty()) entry["status"] = node.status;
    if (node.state == NodeState::stopping && node.run.plan)  // null: a warm stop without a deadline
        entry["kill_in"] =
            node.run.plan->kill_at == StopPlan::never
                ? json(nullptr)
                : json(std::max(0.0,
                                std::chrono::duration<double>(node.run.plan->kill_at - MasterClock::now()).count()));
    if (node.state == NodeState::backoff) {
        entry["backoff"] = {
            {"attempt", node.backoff.attempts()},
            {"restart_in", std::max(0.0, std::chrono::duration<double>(node.restart_at - MasterClock::now()).count())}};
    }
    if (node.successor && node.successor->pid) entry["replacement"] = {{"pid", node.successor->pid}};
    if (!node.retiring.empty()) {
        json old = json::array();
        for (const auto& run : node.retiring) old.push_back(run.pid);
        entry["retiring"] = old;  // replaced processes still on their warm stop
    }
    if (!node.reload_error.empty())
        entry["reload"] = {{"ok", false}, {"error", node.reload_error}, {"log_tail", node.reload_log_tail}};
    if (!running && !node.last_log_tail.empty()) entry["log_tail"] = node.last_log_tail;
    entry.update(containment_->node_info(running ? node.run.unit : node.spec.name, running, rss));
    return entry;
}

json Master::describe() const {
    // RSS of a node: everything in its process group (the program, its pool, a task's subprocesses).
    std::map<pid_t, std::uint64_t> rss_by_group;
    for (const auto& proc : scan_processes()) rss_by_group[proc.pgrp] += proc.rss_bytes;
    json nodes = json::array();
    for (const auto& node : nodes_)
        nodes.push_back(describe_node(*node, alive(node->state) ? rss_by_group[node->run.pid] : 0));
    json out = {{"master",
                 {{"pid", ::getpid()},
                  {"run_dir", config_.run_dir},
                  {"shutdown", shutdown_level_},
                  {"uptime", seconds_since(started_)},
                  {"rss", read_rss(::getpid()).value_or(0)},
                  {"containment", containment_->describe()}}},
                {"nodes", nodes}};
    if (dashboard_) out["master"]["dashboard"] = dashboard_->url();
    return out;
}

void Master::announce_ready(MasterNode& node, const std::string& how) {
    for (auto* timer : {&node.run.ready_timer, &node.run.start_timer}) {
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
          {"pid", node.run.pid},
          {"log", node.spec.logfile},
          {"how", how}});
    if (node.restart_job) job_node_done(node, true, "");
    if (!node.start_reported) {
        node.start_reported = true;
        if (node.in_report)
            send_report({{"event", "ready"},
                         {"node", node.spec.name},
                         {"pid", node.run.pid},
                         {"log", node.spec.logfile},
                         {"how", how}});
    } else if (node.not_ready_reported) {
        log_->info("{}: ready after all, {} after it was started", node.spec.name,
                   fmt_seconds(seconds_since(node.run.started)));
    }
    node.not_ready_reported = false;
    maybe_finish_start_report();
}

void Master::on_start_failure(MasterNode& node, const std::string& error) {
    if (node.start_reported) return;
    node.start_reported = true;
    // Nodes added later do not change the master's exit code.
    if (!report_done_ && node.in_report) start_ok_ = false;
    json event = {{"event", "failed"},
                  {"node", node.spec.name},
                  {"error", error},
                  {"log", node.spec.logfile},
                  {"log_tail", log_tail(node.spec.logfile, node.run.log_start)}};
    if (node.in_report) send_report(event);
    emit(event);
    maybe_finish_start_report();
}

void Master::send_report(const json& event) {
    if (report_done_) return;
    if (report_) report_(event);
}

void Master::maybe_finish_start_report() {
    if (report_done_) return;
    for (const auto& node : nodes_)
        if (node->in_report && !node->start_reported) return;
    send_report({{"event", "done"}, {"ok", start_ok_}, {"not_ready", start_not_ready_}, {"master_pid", ::getpid()}});
    // The master's own supervisor (systemd Type=notify, via the NOTIFY_SOCKET the master was started with and
    // did not pass on): the group counts as started once every node has reported.
    platform::systemd_notify(fmt::format("READY=1\nMAINPID={}\nSTATUS={} node(s) started", static_cast<int>(::getpid()), nodes_.size()));
    report_done_ = true;
    report_ = nullptr;  // a daemon's report pipe closes here: `ccmulti start` returns
}

void Master::on_notify() {
    while (auto message = notify_->receive()) {
        if (message->uid != ::geteuid() && message->uid != 0) continue;
        Found found = find_by_pid(message->pid);
        bool gone = false;
        if (!found.node) {  // a process inside a node's group (the program, or one of its children)
            auto stat = read_proc_stat(message->pid);
            if (stat) found = find_by_pid(stat->pgrp);
            gone = !stat;
        }
        if (!found.node) {
            // A process that has ended since it wrote (a node's last STOPPING=1, read after its reap) is routine
            // at a stop; a live stranger using the socket is not.
            if (gone)
                log_->debug("notify: message from pid {}, which has exited, ignored", message->pid);
            else
                log_->warn("notify: message from pid {} which belongs to no node, ignored", message->pid);
            continue;
        }
        MasterNode* node = found.node;
        const auto& fields = message->fields;
        const bool from_shim = message->pid == found.run->pid;
        if (auto it = fields.find("CCMULTI_PROGRAM_EXIT"); it != fields.end() && from_shim)
            found.run->program_exit = it->second;
        if (found.role == Role::retiring) continue;  // a replaced process: no longer the node's voice
        const bool successor = found.role == Role::successor;
        const std::string who = successor ? node->spec.name + " (replacement)" : node->spec.name;
        if (auto it = fields.find("READY"); it != fields.end() && it->second == "1")
            apply(*node, successor ? NodeEvent::successor_ready : NodeEvent::ready, {.reason = "READY=1"});
        if (auto it = fields.find("STOPPING"); it != fields.end() && it->second == "1")
            log_->info("{}: says it is stopping", who);
        if (auto it = fields.find("STATUS"); it != fields.end()) log_->info("{}: status: {}", who, it->second);
        if (auto it = fields.find("CCMULTI_RESTART"); it != fields.end() && from_shim && !successor) {
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

}  // namespace ccmulti::supervisor
