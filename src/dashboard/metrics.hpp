// /metrics: the latest snapshot (dashboard/live.hpp) in Prometheus' text exposition format (version 0.0.4), so
// any Prometheus can scrape a ccmulti group without an exporter. A pure function of the snapshot.
//
//   ccmulti_up                              1: the dashboard reached the master and the broker this round
//   ccmulti_master_up, ccmulti_broker_up    each of them
//   ccmulti_node_up{node}                   1 while the node is ready
//   ccmulti_node_state{node,state}          1 for the node's state (starting, ready, backoff, ...)
//   ccmulti_node_restarts_total{node}       restarts by the master
//   ccmulti_node_resident_memory_bytes{node}  the node's memory (its cgroup's, else the process's RSS)
//   ccmulti_node_uptime_seconds{node}, ccmulti_node_concurrency{node}
//   ccmulti_queue_messages{queue,state}     ready, scheduled, reserved
//   ccmulti_queue_consumers{queue}
//   ccmulti_tasks_finished_total{node,task} tasks finished, from the node's `inspect stats`
//   ccmulti_recent_results{state}           states among the last results stored (Live::recent_window)
// and, from Celery's events (dashboard/event_state.hpp; only where the broker carries them):
//   ccmulti_events_receiving                1 while the dashboard receives the broker's events
//   ccmulti_events_total                    events received since the dashboard started
//   ccmulti_tasks_total{name,state}         task events by task name and the state they report (RECEIVED,
//                                           STARTED, SUCCESS, FAILURE, RETRY, REVOKED, PENDING for task-sent)
//   ccmulti_task_runtime_seconds{name}      histogram of successful tasks' runtimes
//   ccmulti_node_heartbeat_age_seconds{node}  seconds since the node's last event (heartbeats come every 2 s)
#pragma once

#include <string>

#include "dashboard/event_state.hpp"
#include "dashboard/live.hpp"

namespace ccmulti::dashboard {

inline constexpr const char* metrics_content_type = "text/plain; version=0.0.4; charset=utf-8";

// `events`: null where the broker carries none (the event families are then left out).
std::string render_metrics(const Snapshot& snapshot, const EventMetrics* events = nullptr);

// A label value escaped as the format wants (backslash, double quote, newline).
std::string escape_label(const std::string& value);

}  // namespace ccmulti::dashboard
