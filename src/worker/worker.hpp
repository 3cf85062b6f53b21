// `ccmulti worker`: one node's main process. It forks its pool first (before any thread or broker
// connection), then consumes its queues from one event loop:
//
//   broker wakeup / eta timer ──► reserve (≤ prefetch) ──► ready ──► idle pool process ──► outcome ──► store, ack
//
// Late acks: a message leaves the broker only once its outcome is stored, so a pool process killed mid-task,
// a node killed with SIGKILL or a cold shutdown returns it to its queue (the claim is requeued, or restored by
// the broker once this process is gone). A stored SUCCESS is never replaced, so a re-run stores one result.
//
// Signals: TERM or INT = warm shutdown (stop consuming, return what is prefetched, let running tasks finish);
// QUIT, or a second TERM/INT = cold (kill the pool, return its tasks). READY=1 goes to $NOTIFY_SOCKET once
// the node consumes; STOPPING=1 when it stops.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "broker/connect.hpp"
#include "tasks/registry.hpp"

namespace ccmulti::worker {

// What [tasks."NAME"] says about a task beyond how to run it.
struct TaskPolicy {
    std::optional<double> time_limit, soft_time_limit;  // seconds; the message's own limits take precedence
    std::optional<bool> acks_late, ignore_result;
};

struct WorkerOptions {
    std::string name;  // "w1@host"
    std::vector<std::string> queues{"celery"};
    int concurrency = 1;
    int prefetch_multiplier = 4;                        // reserved ≤ multiplier × concurrency
    std::optional<double> time_limit, soft_time_limit;  // defaults for every task, seconds
    std::optional<std::int64_t> max_tasks_per_child;
    std::optional<std::int64_t> max_memory_per_child;  // KiB resident, checked after each task
    int max_retries = 3;                               // a task asking for more fails: MaxRetriesExceededError
    std::map<std::string, TaskPolicy> policies;        // by task name
    broker::BrokerOptions broker;
    std::filesystem::path control_socket;  // for `ccmulti inspect` (embedded broker); empty: none
    // Celery events (worker/events.hpp), where the broker carries them (Redis, RabbitMQ): task events (-E), and the
    // worker's online/heartbeat/offline (on unless --without-heartbeat).
    bool task_events = false;
    bool worker_events = true;
};

// Runs the node until it has shut down. Returns the exit code (0 after a warm or cold shutdown).
int run_worker(const WorkerOptions& options, const tasks::Registry& registry);

}  // namespace ccmulti::worker
