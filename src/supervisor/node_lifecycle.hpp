// A node's lifecycle as one table, state × event → next state and actions (s6's supervise works this way).
// The master classifies what happened (a ready line, a stop request, its shim's exit) into an event, asks
// transition() what follows and carries out the actions in a fixed order. Nothing here touches a process, so
// the whole table is unit-tested (tests/unit/supervisor/node_lifecycle_test.cpp), and a reader finds every
// rule of a node's life in one place instead of spread over the master's callbacks.
//
//   starting ──ready──► ready ──stop/restart──► stopping ──exited──► stopped
//      │                  │                        │ (in a restart job) ──exited──► starting
//      │ exited           │ exited: crash ──► backoff ──restart_due/restart──► starting
//      ▼                  │ exited: clean ──► exited        │ stop ──► stopped
//    failed (first start) ▼
//                      backoff
//
// Replacing (a reload: `ccmulti reload`, SIGHUP, a code change) starts before it stops. A ready node whose kind
// can run twice under one name (NodeFacts::can_overlap) gets a successor, a second process with the new spec,
// beside it:
//
//   ready ──replace──► replacing ──successor_ready──► ready   (the successor is the node now: the pid file names
//                          │                                   it, and the old process gets its warm stop)
//                          │ successor_failed ──► ready       (the old process serves on, untouched; the
//                          │                                   successor's process group/cgroup is killed)
//                          │ exited (the old one died) ──► starting   (the successor goes on as the node)
//                          │ stop ──► stopping                 (the successor is killed, the old one stops)
//
// A node that cannot overlap, or is not ready (starting, backoff), is replaced as a restart is: stop, then start.
// Once promoted, the old process is no longer the node: it is a retiring process the master stops and reaps
// (its escalation is the stop plan's), outside this table.
//
// A clean exit (code 0, or SIGTERM/SIGINT ccmulti did not send) is someone stopping the node on purpose
// (`celery control shutdown`, `kill`): not restarted, like systemd's Restart=on-failure. A crash of a node that
// was ever ready, or of a restart, goes to backoff and is retried for ever.
#pragma once

#include <optional>
#include <string_view>

namespace ccmulti::supervisor {

enum class NodeState { starting, ready, stopping, stopped, failed, exited, backoff, replacing };

enum class NodeEvent {
    start,             // add: a node not running is started (again)
    spawn_failed,      // its shim could not be started (log file, fork, exec)
    ready,             // READY=1, the log's ready line, or start_secs up
    stop,              // a stop request: control socket, a shutdown signal
    restart,           // a restart job reaches this node
    restart_due,       // the backoff delay is over
    exited,            // its shim is gone (NodeFacts::clean_exit says how)
    replace,           // a reload job reaches this node: start its successor (or restart it, see can_overlap)
    successor_ready,   // the successor said it is ready
    successor_failed,  // the successor could not be spawned, exited, or was not ready by its start_timeout
};

// What the table needs to know beyond the state.
struct NodeFacts {
    bool reported = false;     // its start was reported (ready or failed): this is not its first start
    bool restarting = false;   // part of a restart job
    bool clean_exit = false;   // for `exited`: exit code 0, or SIGTERM/SIGINT
    bool can_overlap = false;  // for `replace`: the node's kind may run twice under one name (NodeSpec::can_overlap)
};

// Side effects, carried out by the master in this order.
enum NodeAction : unsigned {
    act_none = 0,
    act_job_failed = 1U << 0,        // the restart job this node is part of learns it did not come back
    act_report_failed = 1U << 1,     // the start report: it never got ready
    act_report_ready = 1U << 2,      // the start report and listeners: ready (and its restart job: restarted)
    act_release = 1U << 3,           // remove its pid file, drop the lock: the name is free
    act_emit_gone = 1U << 4,         // listeners: its process is gone
    act_cancel_restart = 1U << 5,    // drop the pending backoff restart
    act_count_restart = 1U << 6,     // one more start after the first
    act_spawn = 1U << 7,             // start its shim
    act_schedule_restart = 1U << 8,  // after the backoff delay
    act_begin_stop = 1U << 9,        // signal it and arm the stop plan's escalation (merged when stopping already)
    act_spawn_successor = 1U << 10,  // start a second process with the new spec beside the running one
    act_promote = 1U << 11,          // the successor becomes the node (pid file, status); the old one retires warm
    act_end_successor = 1U << 12,    // kill the successor's whole process group/cgroup; the node keeps its process
    act_adopt_successor = 1U << 13,  // the old process is gone: the (still starting) successor is the node's now
    act_reload_failed = 1U << 14,    // remember why the successor failed (status: "reload failed: …")
};

struct NodeStep {
    NodeState next;
    unsigned actions = act_none;
    bool has(NodeAction action) const { return (actions & action) != 0; }
};

// The table. std::nullopt: the event means nothing in this state (a late ready line while stopping, a stop of
// a node that is gone) and changes nothing.
std::optional<NodeStep> transition(NodeState state, NodeEvent event, const NodeFacts& facts);

std::string_view state_name(NodeState state);
std::string_view event_name(NodeEvent event);

// Has a process: its pid is the master's unreaped child, safe to signal. (`replacing` has two: the node's and
// its successor.)
bool alive(NodeState state);
// Still the master's business: alive, or waiting to be restarted.
bool active(NodeState state);

}  // namespace ccmulti::supervisor
