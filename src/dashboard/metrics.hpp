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
#pragma once

#include <string>

#include "dashboard/live.hpp"

namespace ccmulti::dashboard {

inline constexpr const char* metrics_content_type = "text/plain; version=0.0.4; charset=utf-8";

std::string render_metrics(const Snapshot& snapshot);

// A label value escaped as the format wants (backslash, double quote, newline).
std::string escape_label(const std::string& value);

}  // namespace ccmulti::dashboard
