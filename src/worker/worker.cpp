#include "worker/worker.hpp"

#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <deque>
#include <functional>


#include "platform/event_loop.hpp"
#include "platform/proc.hpp"
#include "platform/proc_title.hpp"
#include "platform/signals.hpp"
#include "platform/systemd_notify.hpp"
#include "protocol/task_message.hpp"
#include "util/error.hpp"
#include "worker/inspect.hpp"
#include "worker/node.hpp"
#include "worker/pending_writes.hpp"
#include "worker/pool.hpp"
#include "worker/pool_child.hpp"
#include "worker/task_runtimes.hpp"
#include "worker/task_totals.hpp"

namespace ccmulti::worker {

namespace {

std::string describe_exit(int status) {
    if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status))
        return "signal " + signal_name(WTERMSIG(status)) + (WCOREDUMP(status) ? " (core dumped)" : "");
    return "status " + std::to_string(status);
}

}  // namespace

int Node::run() {
    std::signal(SIGPIPE, SIG_IGN);  // a pool process gone mid-write is seen as EPIPE
    shim_ = ::getppid();
    for (int sig : {SIGTERM, SIGINT})
        loop_.on_signal(sig, [this](const signalfd_siginfo& info) { on_stop_signal(info); });
    loop_.on_signal(SIGQUIT, [this](const signalfd_siginfo&) { cold_shutdown(); });
    loop_.on_signal(SIGCHLD, [this](const signalfd_siginfo&) { reap(); });
    // The node shim forwards HUP and USR1 (docs/supervisor.md); their default action would end the node on
    // the spot. Celery restarts on HUP and dumps its threads on USR1: here HUP is ignored (restart comes
    // later) and USR1 logs what runs, the nearest useful answer for a single-threaded node.
    loop_.on_signal(SIGHUP, [this](const signalfd_siginfo&) {
        spdlog::info("{}: SIGHUP ignored (restarting a node is not implemented yet)", options_.name);
    });
    loop_.on_signal(SIGUSR1, [this](const signalfd_siginfo&) { log_activity(); });
    set_proc_title("ccmulti: worker " + options_.name, "ccmulti-worker");

    // Orphans of pool processes' commands come to us, not to the node shim, so reap() can end their groups.
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) throw SystemError("PR_SET_CHILD_SUBREAPER", errno);
    // The pool first: forked from a process with no threads and no broker connection yet.
    for (int i = 1; i <= options_.concurrency; ++i) spawn(i);

    connection_ = broker::connect(options_.broker);
    consumer_ = connection_.broker->consume(
        {options_.name, options_.queues,
         static_cast<std::size_t>(std::max(1, options_.prefetch_multiplier) * options_.concurrency)});
    pending_.emplace(loop_, *connection_.broker, *connection_.results, *consumer_);
    events_.emplace(loop_, connection_.broker->events(options_.name), options_.name, options_.task_events,
                    options_.worker_events, [this] { return worker_status(); });
    loop_.watch(consumer_->wakeup_fd(), EPOLLIN, [this](std::uint32_t) {
        consumer_->drain_wakeups();  // a networked consumer reconnects here
        report_broker();
        fill();
    });
    schedule_heartbeat();
    inspect_ = start_inspect_server(options_, *this, loop_);
    started_ = Clock::now();

    report_broker();  // ready now, or once the broker can be reached
    fill();
    loop_.run();
    events_->offline();

    try {
        consumer_->close();
    } catch (const Error& e) {  // what it still held goes back once this process is gone (restore_orphans)
        spdlog::error("{}: cannot give back the tasks it holds: {}", options_.name, e.what());
    }
    spdlog::info("{} stopped", options_.name);
    return 0;
}

InspectState Node::inspect_state() const {
    InspectState state;
    state.node = options_.name;
    state.queues = options_.queues;
    state.concurrency = options_.concurrency;
    state.prefetch = prefetch_limit();
    state.broker_url = connection_.broker ? connection_.broker->url() : options_.broker.url;
    state.uptime = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started_);
    state.totals = totals_.totals();
    state.registered = registry_.names();
    state.soft_time_limit = options_.soft_time_limit;
    state.time_limit = options_.time_limit;
    state.max_tasks_per_child = options_.max_tasks_per_child.value_or(0);
    for (const auto& [pid, process] : pool_.processes()) state.pool_pids.push_back(pid);
    for (const auto& [tag, task] : running_) {
        if (task.begun())
            state.active.push_back({task.delivery.message, task.pid, task.started_at, !task.acks_late});
        else
            state.reserved.push_back({task.delivery.message, 0, {}, false});
    }
    for (const auto& delivery : ready_) state.reserved.push_back({delivery.message, 0, {}, false});
    return state;
}

void Node::spawn(int index) {
    PoolProcess& process = pool_.spawn(index);
    pid_t pid = process.pid;
    loop_.watch(process.replies.get(), EPOLLIN, [this, pid](std::uint32_t) { read_replies(pid); });
}

void Node::read_replies(pid_t pid) {
    PoolProcess* process = pool_.find(pid);
    if (!process) return;
    auto fill_state = process->reader.fill(process->replies.get());
    try {
        while (auto reply = process->reader.next()) on_reply(*process, *reply);
    } catch (const Error& e) {
        spdlog::error("pool process {} (#{}): {}; killing it", pid, process->index, e.what());
        ::kill(pid, SIGKILL);
        fill_state = FrameReader::Fill::closed;
    }
    // Its exit comes through SIGCHLD; the pipe has nothing more to say.
    if (fill_state == FrameReader::Fill::closed) loop_.unwatch(process->replies.get());
}

void Node::reap() {
    for (;;) {
        // Peek first (WNOWAIT): while it is a zombie its pid, and so the id of a group it leads, stay ours.
        siginfo_t info{};
        if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0) {
            if (errno == EINTR) continue;
            break;  // ECHILD
        }
        pid_t pid = info.si_pid;
        if (pid == 0) break;
        if (!pool_.find(pid)) end_orphaned_group(pid);
        int status = 0;
        pid_t reaped;
        while ((reaped = ::waitpid(pid, &status, WNOHANG)) < 0 && errno == EINTR) {
        }
        if (reaped != pid) break;
        if (pool_.find(pid)) read_replies(pid);  // an outcome written just before it exited still counts
        auto process = pool_.remove(pid);
        if (!process) continue;
        loop_.unwatch(process->replies.get());
        if (process->awaiting_writable) loop_.unwatch(process->requests.get());
        // Tasks whose requests it never had whole did not begin: back to ready_, not lost.
        take_back(*process, process->tasks.size() - std::min(process->unsent, process->tasks.size()));
        if (!process->tasks.empty()) {
            take_back(*process, 1);  // the running one stays: it is lost, or ended
            lose_task(process->tasks.front(), describe_exit(status));
        } else if (!process->retiring && state_ == State::running) {
            spdlog::warn("pool process {} (#{}) exited unexpectedly ({}); replacing it", pid, process->index,
                         describe_exit(status));
        }
        if (state_ == State::running || state_ == State::warm) spawn(process->index);
    }
    if (state_ == State::draining && pool_.size() == 0) loop_.stop();
    dispatch();
}

void Node::end_orphaned_group(pid_t pid) {
    if (auto stat = read_proc_stat(pid); stat && stat->pgrp == pid) ::kill(-pid, SIGKILL);
}

protocol::WorkerStatus Node::worker_status() const {
    protocol::WorkerStatus status;
    status.freq = protocol::heartbeat_interval_seconds;
    for (const auto& [tag, task] : running_)
        if (task.begun()) ++status.active;
    status.processed = static_cast<long>(processed_);
    double load[3] = {0, 0, 0};
    if (::getloadavg(load, 3) == 3) status.loadavg.assign(load, load + 3);
    return status;
}

void Node::log_activity() const {
    spdlog::info("{}: {} running, {} reserved, {} pool process(es)", options_.name, running_.size(), ready_.size(),
                 pool_.size());
    for (const auto& [tag, task] : running_)
        spdlog::info("  running {}[{}] in pool process {} for {:.1f}s", task.delivery.message.task,
                     task.delivery.message.id, task.pid,
                     std::chrono::duration<double>(Clock::now() - task.started).count());
}

void Node::stop_consuming() {
    loop_.unwatch(consumer_->wakeup_fd());
    if (eta_timer_) loop_.cancel(eta_timer_);
    eta_timer_ = 0;
    for (const auto& delivery : ready_) consumer_->requeue(delivery);
    ready_.clear();
    platform::systemd_notify("STOPPING=1");
}

void Node::on_stop_signal(const signalfd_siginfo& info) {
    bool from_parent = static_cast<pid_t>(info.ssi_pid) == shim_;
    auto now = Clock::now();
    if (last_stop_ && last_stop_->signo == info.ssi_signo && last_stop_->from_parent != from_parent &&
        now - last_stop_->when < stop_signal_echo) {
        spdlog::info(
            "{}: {} from pid {} is the one just received (a signal to the whole process group comes "
            "directly and through the node shim): counted once",
            options_.name, signal_name(static_cast<int>(info.ssi_signo)), info.ssi_pid);
        last_stop_.reset();  // a third one is asking again
        return;
    }
    last_stop_ = StopSignal{now, info.ssi_signo, from_parent};
    warm_shutdown();
}

void Node::warm_shutdown() {
    if (state_ != State::running) {
        if (state_ == State::warm) cold_shutdown();
        return;
    }
    state_ = State::warm;
    stop_consuming();
    spdlog::info("{}: warm shutdown, waiting for {} running task(s); send the signal again for a cold shutdown",
                 options_.name, running_.size());
    after_task();
}

void Node::cold_shutdown() {
    if (state_ == State::cold || state_ == State::draining) return;
    if (state_ == State::running) stop_consuming();
    state_ = State::cold;
    spdlog::warn("{}: cold shutdown, {} running task(s) go back to their queues", options_.name, running_.size());
    for (auto& [tag, task] : running_) {
        Pool::kill(task.pid);
        loop_.cancel(task.limit_timer);
        if (task.acks_late || !task.begun()) consumer_->requeue(task.delivery);
        if (PoolProcess* process = pool_.find(task.pid)) process->tasks.clear();
    }
    running_.clear();
    drain();
}

void Node::drain() {
    state_ = State::draining;
    for (const auto& [pid, process] : pool_.processes()) retire(*process);
    if (pool_.size() == 0) loop_.stop();
    loop_.after(std::chrono::seconds(10), [this] {  // a pool process that ignores end of file
        for (const auto& [pid, process] : pool_.processes()) Pool::kill(pid);
    });
}

std::string Node::join_queues() const {
    std::string out;
    for (const auto& queue : options_.queues) out += (out.empty() ? "" : ",") + queue;
    return out;
}

int run_worker(const WorkerOptions& options, const tasks::Registry& registry) {
    Node node(options, registry);
    return node.run();
}

}  // namespace ccmulti::worker
