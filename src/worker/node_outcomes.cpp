// A task's life in the node once handed over: started, its outcome read, and the result/ack writes that settle
// it (worker/pending_writes.hpp) (worker/node.hpp).
#include <spdlog/spdlog.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>


#include "protocol/task_message.hpp"
#include "util/error.hpp"
#include "worker/node.hpp"
#include "worker/pool_child.hpp"

namespace ccmulti::worker {

namespace {

std::chrono::duration<double> seconds(double value) {
    return std::chrono::duration<double>(value);
}

// Celery's default_retry_delay when a retry names no countdown.
constexpr double default_retry_delay = 180;
// "in 5s: reason" (include/ccmulti/task.hpp, TaskRetry) → 5; Celery's default delay when no number is given.
double retry_countdown(const std::string& message) {
    auto digit = message.find_first_of("0123456789");
    if (digit == std::string::npos) return default_retry_delay;
    double countdown = std::strtod(message.c_str() + digit, nullptr);
    return countdown >= 0 && countdown <= 1e9 ? countdown : default_retry_delay;  // 1e9 s: about 31 years
}

// A task whose pool process dies this often is not given out again: it is what kills them.
constexpr int max_worker_losses = 3;

}  // namespace

void Node::begin(const std::string& tag) {
    Running& task = running_.at(tag);
    const auto& message = task.delivery.message;
    task.started = Clock::now();
    task.started_at = protocol::now();
    if (task.hard_limit)
        task.limit_timer = loop_.after(std::chrono::duration_cast<Clock::duration>(seconds(*task.hard_limit)),
                                       [this, tag, limit = *task.hard_limit] { time_limit_exceeded(tag, limit); });
    spdlog::info("Task {}[{}] received{}", message.task, message.id, message.redelivered ? " (redelivered)" : "");
    events_->started(message.id);
    // Sent with the round's other writes; the task does not wait for them. A quick task's outcome follows
    // within milliseconds: STARTED would be overwritten before anyone saw it, at the cost of a write (Celery
    // stores STARTED for no task unless told to).
    Settlement writes;
    if (!task.ignore_result && !is_quick(message.task))
        writes.result = described(message, protocol::started_result(message.id, task.pid, options_.name));
    if (!task.acks_late) writes.ack = task.delivery;
    pending_->add(std::move(writes));
}

void Node::on_reply(PoolProcess& process, const nlohmann::json& reply) {
    if (process.tasks.empty()) return;  // its task already ended (time limit): the reply is too late
    auto it = running_.find(process.tasks.front());
    process.tasks.pop_front();
    ++process.tasks_done;
    if (!process.tasks.empty()) begin(process.tasks.front());
    if (it == running_.end()) return;
    Running task = std::move(it->second);
    running_.erase(it);
    loop_.cancel(task.limit_timer);
    // Only tasks the node runs: a name only the broker knows (NotRegistered) must not grow the table.
    if (registry_.find(task.delivery.message.task))
        runtimes_.record(task.delivery.message.task,
                         std::chrono::duration<double>(Clock::now() - task.started).count());
    finish(task, outcome_from_reply(reply));

    if (options_.max_tasks_per_child &&
        static_cast<std::int64_t>(process.tasks_done) >= *options_.max_tasks_per_child) {
        spdlog::info("pool process {} (#{}) ran {} tasks (max_tasks_per_child): replacing it", process.pid,
                     process.index, process.tasks_done);
        retire(process);
    } else if (auto rss = reply.find("rss_kib"); options_.max_memory_per_child && rss != reply.end() &&
                                                 rss->is_number() &&
                                                 rss->get<std::int64_t>() > *options_.max_memory_per_child) {
        spdlog::info("pool process {} (#{}) uses {} KiB (max_memory_per_child {} KiB): replacing it", process.pid,
                     process.index, rss->get<std::int64_t>(), *options_.max_memory_per_child);
        retire(process);
    }
    after_task();
}

void Node::finish(Running& task, tasks::TaskOutcome outcome) {
    const auto& message = task.delivery.message;
    double runtime = std::chrono::duration<double>(Clock::now() - task.started).count();
    totals_.count(message.task);
    ++processed_;
    losses_.erase(message.id);
    Settlement writes;
    if (outcome.ok) {
        if (spdlog::should_log(spdlog::level::info))
            spdlog::info("Task {}[{}] succeeded in {:.6f}s: {}", message.task, message.id, runtime,
                         outcome.result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        events_->succeeded(message.id, outcome.result, runtime);  // before the result moves into its meta
        if (!task.ignore_result)
            writes.result = described(message, protocol::success_result(message.id, std::move(outcome.result)));
    } else if (outcome.exception.type == "Retry" && message.retries < options_.max_retries) {
        writes = retry(task, outcome);
    } else {
        auto exception = outcome.exception;
        if (exception.type == "Retry")
            exception = protocol::ExceptionInfo::of("MaxRetriesExceededError",
                                                    "Can't retry " + message.task + "[" + message.id +
                                                        "] max retries: " + std::to_string(options_.max_retries));
        spdlog::error("Task {}[{}] raised unexpected: {}", message.task, message.id, exception.describe());
        if (!task.ignore_result)
            writes.result = described(message, protocol::failure_result(message.id, exception, outcome.traceback));
        events_->failed(message.id, exception, outcome.traceback);
    }
    if (task.acks_late) writes.ack = std::move(task.delivery);  // the task ends here: no copy of its message
    pending_->add(std::move(writes));
}

Settlement Node::retry(const Running& task, const tasks::TaskOutcome& outcome) {
    const auto& message = task.delivery.message;
    double countdown = retry_countdown(outcome.exception.message);
    protocol::TaskMessage next = message;
    next.retries = message.retries + 1;
    next.eta = protocol::now() + std::chrono::duration_cast<protocol::TimePoint::duration>(seconds(countdown));
    next.delivery_tag = protocol::new_uuid();
    next.redelivered = false;
    spdlog::info("Task {}[{}] retry {} in {}s", message.task, message.id, next.retries, countdown);
    events_->retried(message.id, outcome.exception, outcome.traceback);
    Settlement writes;
    writes.publish = std::move(next);
    if (!task.ignore_result)
        writes.result = described(message, protocol::retry_result(message.id, outcome.exception, outcome.traceback));
    return writes;
}

void Node::time_limit_exceeded(const std::string& tag, double limit) {
    auto it = running_.find(tag);
    if (it == running_.end()) return;
    Running task = std::move(it->second);
    running_.erase(it);
    if (PoolProcess* process = pool_.find(task.pid)) {
        Pool::kill(task.pid);    // reaped and replaced like any other exit
        take_back(*process, 1);  // the running one stays: it is lost, or ended
        process->tasks.clear();
        retire(*process);
    }
    tasks::TaskOutcome outcome;
    outcome.exception = protocol::ExceptionInfo::of("TimeLimitExceeded", fmt::format("{:g}", limit));
    outcome.traceback = fmt::format(
        "TimeLimitExceeded: the task ran over its hard time limit of {:g}s and its pool process was killed", limit);
    spdlog::error("Task {}[{}] hard time limit ({}s) exceeded: pool process {} killed", task.delivery.message.task,
                  task.delivery.message.id, limit, task.pid);
    finish(task, std::move(outcome));
    after_task();
}

void Node::lose_task(const std::string& tag, const std::string& how) {
    auto it = running_.find(tag);
    if (it == running_.end()) return;
    Running task = std::move(it->second);
    running_.erase(it);
    loop_.cancel(task.limit_timer);
    const auto& message = task.delivery.message;
    int losses = ++losses_[message.id];
    if (losses >= max_worker_losses || !task.acks_late) {
        tasks::TaskOutcome outcome;
        outcome.exception = protocol::ExceptionInfo::of("WorkerLostError", "Worker exited prematurely: " + how);
        outcome.traceback = outcome.exception.describe();
        finish(task, std::move(outcome));
    } else {
        spdlog::warn("Task {}[{}]: its pool process {} died ({}); returned to queue {}", message.task, message.id,
                     task.pid, how, message.queue);
        consumer_->requeue(task.delivery);
    }
    after_task();
}

void Node::after_task() {
    if (state_ == State::warm && running_.empty()) {
        drain();
        return;
    }
    fill(true);
    dispatch();
}

void Node::settle(broker::Delivery delivery, bool ack, std::optional<protocol::ResultMeta> result) {
    Settlement writes;
    writes.result = std::move(result);
    if (ack) writes.ack = std::move(delivery);
    pending_->add(std::move(writes));
}

protocol::ResultMeta Node::described(const protocol::TaskMessage& message, protocol::ResultMeta meta) const {
    meta.name = message.task;
    meta.worker = options_.name;
    meta.queue = message.queue;
    meta.args = message.args;
    meta.kwargs = message.kwargs;
    meta.retries = message.retries;
    meta.reply_to = message.reply_to;
    return meta;
}

}  // namespace ccmulti::worker
