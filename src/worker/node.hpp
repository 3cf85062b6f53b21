// The node of `ccmulti worker` (worker/worker.hpp says what it does): one class, its member functions defined
// by concept in worker.cpp (start, pool processes, shutdown), node_consume.cpp (reserving from the broker),
// node_dispatch.cpp (handing tasks to pool processes, quick tasks) and node_outcomes.cpp (a task's start and
// outcome, and the writes that settle it). Private to src/worker.
#pragma once

#include <sys/signalfd.h>
#include <sys/types.h>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "broker/broker.hpp"
#include "platform/event_loop.hpp"
#include "tasks/execute.hpp"
#include "tasks/registry.hpp"
#include "util/error.hpp"
#include "worker/events.hpp"
#include "worker/inspect.hpp"
#include "worker/pending_writes.hpp"
#include "worker/pool.hpp"
#include "worker/task_runtimes.hpp"
#include "worker/task_totals.hpp"
#include "worker/worker.hpp"

namespace ccmulti::worker {

using Clock = std::chrono::steady_clock;

class Node : public InspectSource {
public:
    Node(const WorkerOptions& options, const tasks::Registry& registry)
        : options_(options),
          registry_(registry),
          pool_(registry, options.name),
          totals_([&registry](const std::string& task) { return registry.find(task) != nullptr; }) {}

    int run();

    // InspectSource
    InspectState inspect_state() const override;
    std::optional<nlohmann::json> control(const std::string& method) override {
        return events_ ? events_->control(method) : std::nullopt;
    }

private:
    enum class State { running, warm, cold, draining };

    // A task handed to a pool process: running, or queued behind the one it runs (quick tasks).
    struct Running {
        broker::Delivery delivery;
        pid_t pid = 0;
        std::optional<double> hard_limit;
        Clock::time_point started;  // set by begin()
        protocol::TimePoint started_at;
        EventLoop::TimerId limit_timer = 0;
        bool acks_late = true, ignore_result = false;
        bool begun() const { return started != Clock::time_point{}; }
    };

    // ---- the pool ----

    void spawn(int index);
    void read_replies(pid_t pid);
    void reap();

    // Every child of this process but the pool's is an orphan we adopted as subreaper: the command of a pool
    // process that died mid-task, killed by PR_SET_PDEATHSIG, or something that command started. A command
    // leads its own process group (tasks/command_runner.hpp); what it started lives on in that group, so the
    // group goes with it. (Pool::kill does this up front when the node itself kills a pool process.)
    static void end_orphaned_group(pid_t pid);

    // ---- consuming ----

    // multiplier × concurrency, and quick_prefetch_boost times that while the node holds tasks and every one is
    // known to be quick (see "quick tasks" below): a window of tasks that take microseconds is milliseconds of
    // work, and claiming it in bigger batches, fewer broker round trips, is what lets one node drain thousands a
    // second. An idle node, or one holding any other task, reserves the plain window.
    std::size_t prefetch_limit() const;

    // Reserves up to the prefetch limit. After a finished task (`batch`) only once half the prefetch window is
    // free, or a pool process would otherwise sit idle: a claim is a broker round trip, and while a queue drains,
    // claiming several at a time instead of one per finished task is what keeps the node fast. A wakeup (a new
    // message) always claims.
    void fill(bool batch = false);
    void arm_eta_timer();
    void schedule_heartbeat();

    // The broker's reachability as the node's STATUS= line (the master shows it in `status`), on every change.
    // The node is ready (READY=1, the "ready" log line) only once it consumes: a broker that cannot be reached
    // when it starts keeps it starting, with the reason in its log, until it can.
    void report_broker();

    // A broker call failed (the embedded database full, busy, an I/O error): the node goes on. Logged once per
    // episode (again only when the error changes); what it was doing is tried again with a growing delay. Nothing
    // is lost: a failed claim claimed nothing, and what the node holds stays unacked until it is settled.
    void broker_failed(const char* what, const Error& e);
    void broker_ok();

    // A message just reserved: what cannot run is settled at once, the rest waits for a pool process.
    void accept(broker::Delivery delivery);

    // Settles an expired task as REVOKED without running it. Checked on receipt and again when a pool process
    // is free (as Celery does): a prefetched task can wait behind long ones for longer than it may live.
    bool revoke_if_expired(const broker::Delivery& delivery);
    void dispatch();

    // send_requests() once the loop's current turn is done: a turn reads every reply a pool process sent (quick
    // tasks: several) and hands out as many tasks, and each process gets them in one write(2), not one each.
    void send_requests_after_turn();
    // Writes what hand() queued for each pool process, as far as its pipe takes it (write_requests). True when a
    // process turned out to be gone and its unsent tasks went back to ready_.
    bool send_requests();

    // Writes what the request pipe of `process` has room for now; the rest is written when epoll reports it
    // writable. The node never blocks on a pool process: one busy writing a large reply is read meanwhile. A
    // process that had nothing to do begins its first task once that task's request is written whole. A process
    // gone since is retired (SIGCHLD replaces it) and its unsent tasks, which never began, go back to the front
    // of ready_: false then.
    bool write_requests(PoolProcess& process);
    void watch_writable(PoolProcess& process, bool want);

    // Closes the request pipe of `process` (it exits once idle); tasks whose requests were not written whole
    // never began: back to ready_.
    void retire(PoolProcess& process);

    // ---- quick tasks ----
    //
    // A pool process that has just finished a task waits for the node to read the outcome and send the next one.
    // For a task of a few microseconds that wait, and the broker round trips the node makes meanwhile, are most
    // of the time: so a process whose tasks are all known to be quick is given more (up to
    // max_tasks_per_process), and runs them one after the other. A task waits in such a queue for at most a few
    // quick tasks; a task that is slow, or not known yet, never has another queued behind it, so no task waits
    // behind a long one while another process is free (Celery's -Ofair).

    static constexpr std::size_t max_tasks_per_process = 8;
    static constexpr std::size_t quick_prefetch_boost = 8;

    bool is_quick(const std::string& task) const { return runtimes_.is_quick(task); }

    bool runs_only_quick_tasks(const PoolProcess& process) const;
    bool holds_only_quick_tasks() const;

    // The tasks of `process` after its first `keep`, which never began (queued behind the running one, or never
    // written): back to the front of ready_, in order, for the next free process.
    void take_back(PoolProcess& process, std::size_t keep);

    const TaskPolicy* policy(const std::string& task) const {
        auto it = options_.policies.find(task);
        return it == options_.policies.end() ? nullptr : &it->second;
    }

    bool ignores_result(const protocol::TaskMessage& message) const {
        const TaskPolicy* p = policy(message.task);
        return message.ignore_result || (p && p->ignore_result.value_or(false));
    }

    // Queues the task's request for `process` (written by send_requests, once per turn).
    void hand(PoolProcess& process, broker::Delivery delivery);

    // The task of `tag` is now the one its pool process runs: its hard limit starts counting.
    void begin(const std::string& tag);
    void on_reply(PoolProcess& process, const nlohmann::json& reply);
    // Settles a task that ended (its result, its late ack); `task` is spent: its delivery moves into the ack.
    void finish(Running& task, tasks::TaskOutcome outcome);

    // The retry is published before the original is acked: a crash in between runs it twice, never zero times.
    Settlement retry(const Running& task, const tasks::TaskOutcome& outcome);
    void time_limit_exceeded(const std::string& tag, double limit);

    // A pool process died while running the task of `tag`.
    void lose_task(const std::string& tag, const std::string& how);
    void after_task();

    // The result of a message that is not run (or not any more), then its ack (worker/pending_writes.hpp).
    void settle(broker::Delivery delivery, bool ack, std::optional<protocol::ResultMeta> result);

    // `meta` with what a result tells about its task (Celery's result_extended fields).
    protocol::ResultMeta described(const protocol::TaskMessage& message, protocol::ResultMeta meta) const;
    protocol::WorkerStatus worker_status() const;  // for the events' heartbeat
    void log_activity() const;

    // ---- shutdown ----

    void stop_consuming();

    // A signal sent to the node's whole process group (`kill -TERM -PGID`, timeout(1), an init script, Ctrl-C)
    // reaches the worker twice: directly, and relayed by the node shim, its parent, in the same group. Those two
    // copies are one request: a TERM/INT that arrives within stop_signal_echo of the one before, the same signal,
    // where exactly one of the two came from the parent, is counted once. A second TERM from the same sender (two
    // `ccmulti stop`s, or two `kill`s by hand) still counts: that is asking again, and makes the shutdown cold.
    static constexpr auto stop_signal_echo = std::chrono::seconds(2);
    void on_stop_signal(const signalfd_siginfo& info);
    void warm_shutdown();
    void cold_shutdown();

    // Every pool process is told to exit (end of file on its requests); the loop ends when the last is reaped.
    void drain();
    std::string join_queues() const;

    const WorkerOptions& options_;
    const tasks::Registry& registry_;
    EventLoop loop_;
    Pool pool_;
    broker::Connection connection_;
    std::unique_ptr<broker::Consumer> consumer_;
    std::unique_ptr<InspectServer> inspect_;
    std::deque<broker::Delivery> ready_;
    std::unordered_map<std::string, Running> running_;  // by delivery tag (looked up several times per task)
    std::map<std::string, int> losses_;                 // pool processes lost per task id
    TaskTotals totals_;                                 // tasks finished per name (bounded)
    TaskRuntimes runtimes_;
    EventLoop::TimerId eta_timer_ = 0;
    std::optional<std::string> broker_down_;   // what report_broker() last said
    bool ready_announced_ = false;             // READY=1 sent: the node consumes
    std::optional<std::string> broker_error_;  // the error of the broker call that failed last (broker_failed)
    Clock::time_point broker_error_since_;
    int broker_error_count_ = 0;
    EventLoop::TimerId retry_timer_ = 0;    // fill() again after a failed claim
    std::optional<PendingWrites> pending_;  // once connected
    std::optional<NodeEvents> events_;      // once connected
    std::size_t processed_ = 0;             // tasks finished (for the heartbeat)
    bool requests_deferred_ = false;        // send_requests_after_turn() is pending
    Clock::time_point started_ = Clock::now();
    State state_ = State::running;
    struct StopSignal {
        Clock::time_point when;
        std::uint32_t signo = 0;
        bool from_parent = false;
    };
    pid_t shim_ = 0;                       // our parent: the node shim when the master runs us
    std::optional<StopSignal> last_stop_;  // the last TERM/INT counted (on_stop_signal)
};

}  // namespace ccmulti::worker
