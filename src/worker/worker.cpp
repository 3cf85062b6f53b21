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

#include <systemd/sd-daemon.h>

#include "platform/event_loop.hpp"
#include "platform/proc.hpp"
#include "platform/proc_title.hpp"
#include "platform/signals.hpp"
#include "protocol/task_message.hpp"
#include "util/error.hpp"
#include "worker/events.hpp"
#include "worker/inspect.hpp"
#include "worker/pending_writes.hpp"
#include "worker/pool.hpp"
#include "worker/pool_child.hpp"
#include "worker/task_runtimes.hpp"
#include "worker/task_totals.hpp"

namespace ccmulti::worker {

namespace {

using Clock = std::chrono::steady_clock;

std::chrono::duration<double> seconds(double value) {
    return std::chrono::duration<double>(value);
}

// Clamped to ±100 years: an eta in the year 9999 (or 1) must not overflow the steady clock's nanoseconds.
Clock::time_point steady_of(protocol::TimePoint when) {
    constexpr auto century = std::chrono::microseconds(std::int64_t{100} * 366 * 86400 * 1000000);
    auto delta = std::clamp<std::chrono::microseconds>(when - protocol::now(), -century, century);
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(delta);
}

std::string describe_exit(int status) {
    if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status))
        return "signal " + signal_name(WTERMSIG(status)) + (WCOREDUMP(status) ? " (core dumped)" : "");
    return "status " + std::to_string(status);
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

class Node : public InspectSource {
public:
    Node(const WorkerOptions& options, const tasks::Registry& registry)
        : options_(options),
          registry_(registry),
          pool_(registry, options.name),
          totals_([&registry](const std::string& task) { return registry.find(task) != nullptr; }) {}

    int run() {
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

    // InspectSource
    InspectState inspect_state() const override {
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

    void spawn(int index) {
        PoolProcess& process = pool_.spawn(index);
        pid_t pid = process.pid;
        loop_.watch(process.replies.get(), EPOLLIN, [this, pid](std::uint32_t) { read_replies(pid); });
    }

    void read_replies(pid_t pid) {
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

    void reap() {
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

    // Every child of this process but the pool's is an orphan we adopted as subreaper: the command of a pool
    // process that died mid-task, killed by PR_SET_PDEATHSIG, or something that command started. A command
    // leads its own process group (tasks/command_runner.hpp); what it started lives on in that group, so the
    // group goes with it. (Pool::kill does this up front when the node itself kills a pool process.)
    static void end_orphaned_group(pid_t pid) {
        if (auto stat = read_proc_stat(pid); stat && stat->pgrp == pid) ::kill(-pid, SIGKILL);
    }

    // ---- consuming ----

    // multiplier × concurrency, and quick_prefetch_boost times that while the node holds tasks and every one is
    // known to be quick (see "quick tasks" below): a window of tasks that take microseconds is milliseconds of
    // work, and claiming it in bigger batches, fewer broker round trips, is what lets one node drain thousands a
    // second. An idle node, or one holding any other task, reserves the plain window.
    std::size_t prefetch_limit() const {
        auto base = static_cast<std::size_t>(std::max(1, options_.prefetch_multiplier) * options_.concurrency);
        return holds_only_quick_tasks() ? base * quick_prefetch_boost : base;
    }

    // Reserves up to the prefetch limit. After a finished task (`batch`) only once half the prefetch window is
    // free, or a pool process would otherwise sit idle: a claim is a broker round trip, and while a queue drains,
    // claiming several at a time instead of one per finished task is what keeps the node fast. A wakeup (a new
    // message) always claims.
    void fill(bool batch = false) {
        if (state_ != State::running) return;
        std::size_t held = ready_.size() + running_.size();
        std::size_t limit = prefetch_limit();
        std::size_t room = held < limit ? limit - held : 0;
        bool worth_it = !batch || room * 2 >= limit || (ready_.empty() && pool_.idle());
        if (room > 0 && worth_it) {
            try {
                auto deliveries = consumer_->reserve(room);
                bool drained = deliveries.size() < room;
                for (auto& delivery : deliveries) accept(std::move(delivery));
                if (drained) arm_eta_timer();
                broker_ok();
            } catch (const Error& e) {
                broker_failed("claiming tasks", e);
            }
        }
        dispatch();
    }

    void arm_eta_timer() {
        if (eta_timer_) loop_.cancel(eta_timer_);
        eta_timer_ = 0;
        if (auto eta = consumer_->next_eta()) {
            eta_timer_ = loop_.at(steady_of(*eta), [this] {
                eta_timer_ = 0;
                fill();
            });
        }
    }

    void schedule_heartbeat() {
        loop_.after(consumer_->heartbeat_interval(), [this] {
            if (state_ != State::running && state_ != State::warm) return;
            schedule_heartbeat();  // first: whatever happens below, the heartbeat goes on
            try {
                consumer_->heartbeat();
                broker_ok();
            } catch (const Error& e) {
                broker_failed("heartbeat", e);
            }
            report_broker();
            fill();
        });
    }

    // The broker's reachability as the node's STATUS= line (the master shows it in `status`), on every change.
    // The node is ready (READY=1, the "ready" log line) only once it consumes: a broker that cannot be reached
    // when it starts keeps it starting, with the reason in its log, until it can.
    void report_broker() {
        auto down = consumer_->unavailable();
        if (!ready_announced_) {
            if (down) {
                if (down != broker_down_)
                    spdlog::warn("{}: not ready: broker unavailable ({}); trying again in the background",
                                 options_.name, *down);
                broker_down_ = down;
                ::sd_notifyf(0, "STATUS=not ready: broker unavailable: %s", down->c_str());
                return;
            }
            broker_down_.reset();
            ready_announced_ = true;
            events_->online();
            const auto& results = options_.broker.results_url;
            spdlog::info("{} ready: queues {}, concurrency {}, broker {}{}", options_.name, join_queues(),
                         options_.concurrency, connection_.broker->url(),
                         results.empty() ? "" : ", results " + broker::display_url(results));
            ::sd_notifyf(0, "READY=1\nSTATUS=consuming %s", join_queues().c_str());
            return;
        }
        if (down == broker_down_) return;
        broker_down_ = down;
        if (down) {
            spdlog::warn("{}: broker unavailable ({}); tasks held are kept, results wait", options_.name, *down);
            ::sd_notifyf(0, "STATUS=broker unavailable: %s", down->c_str());
        } else {
            spdlog::info("{}: broker reachable again", options_.name);
            ::sd_notifyf(0, "STATUS=consuming %s", join_queues().c_str());
        }
    }

    // A broker call failed (the embedded database full, busy, an I/O error): the node goes on. Logged once per
    // episode (again only when the error changes); what it was doing is tried again with a growing delay. Nothing
    // is lost: a failed claim claimed nothing, and what the node holds stays unacked until it is settled.
    void broker_failed(const char* what, const Error& e) {
        const std::string text = e.what();
        if (!broker_error_) broker_error_since_ = Clock::now();
        if (broker_error_ != text) {
            spdlog::error(
                "{}: broker error while {}: {}; the node goes on and tries again (logged once until it "
                "changes or clears)",
                options_.name, what, text);
            ::sd_notifyf(0, "STATUS=broker error: %s", text.c_str());
        }
        broker_error_ = text;
        ++broker_error_count_;
        if (state_ != State::running || retry_timer_) return;
        auto delay = std::chrono::milliseconds(std::min(250 << std::min(broker_error_count_ - 1, 6), 10'000));
        retry_timer_ = loop_.after(delay, [this] {
            retry_timer_ = 0;
            fill();
        });
    }

    void broker_ok() {
        if (!broker_error_) return;
        spdlog::info("{}: broker usable again after {:.1f}s ({} failed call(s))", options_.name,
                     std::chrono::duration<double>(Clock::now() - broker_error_since_).count(), broker_error_count_);
        broker_error_.reset();
        broker_error_count_ = 0;
        if (ready_announced_ && !broker_down_) ::sd_notifyf(0, "STATUS=consuming %s", join_queues().c_str());
    }

    // A message just reserved: what cannot run is settled at once, the rest waits for a pool process.
    void accept(broker::Delivery delivery) {
        const auto& message = delivery.message;
        if (delivery.decode_error) {
            spdlog::error("message {} on queue {} cannot be run: {}", message.id, message.queue,
                          *delivery.decode_error);
            auto meta = protocol::failure_result(
                message.id, protocol::ExceptionInfo::of("ContentDisallowed", *delivery.decode_error),
                *delivery.decode_error);
            auto result = described(message, std::move(meta));
            settle(std::move(delivery), true, std::move(result));
            return;
        }
        if (revoke_if_expired(delivery)) return;
        events_->received(delivery.message);
        ready_.push_back(std::move(delivery));
    }

    // Settles an expired task as REVOKED without running it. Checked on receipt and again when a pool process
    // is free (as Celery does): a prefetched task can wait behind long ones for longer than it may live.
    bool revoke_if_expired(const broker::Delivery& delivery) {
        const auto& message = delivery.message;
        if (!message.expires || *message.expires >= protocol::now()) return false;
        spdlog::info("Task {}[{}] expired before it started: revoked", message.task, message.id);
        events_->revoked(message.id, true);
        std::optional<protocol::ResultMeta> result;
        if (!ignores_result(message)) result = described(message, protocol::revoked_result(message.id, "expired"));
        settle(delivery, true, std::move(result));
        return true;
    }

    void dispatch() {
        while (!ready_.empty() && (state_ == State::running || state_ == State::warm)) {
            PoolProcess* process = pool_.idle();
            if (!process)
                process = pool_.least_loaded(max_tasks_per_process,
                                             [this](const PoolProcess& p) { return runs_only_quick_tasks(p); });
            if (!process) break;
            auto delivery = std::move(ready_.front());
            ready_.pop_front();
            if (revoke_if_expired(delivery)) continue;
            hand(*process, std::move(delivery));
        }
        if (send_requests()) dispatch();
    }

    // Writes what hand() queued for each pool process, as far as its pipe takes it (write_requests). True when a
    // process turned out to be gone and its unsent tasks went back to ready_.
    bool send_requests() {
        bool lost = false;
        for (const auto& [pid, process] : pool_.processes())
            if (!write_requests(*process)) lost = true;
        return lost;
    }

    // Writes what the request pipe of `process` has room for now; the rest is written when epoll reports it
    // writable. The node never blocks on a pool process: one busy writing a large reply is read meanwhile. A
    // process that had nothing to do begins its first task once that task's request is written whole. A process
    // gone since is retired (SIGCHLD replaces it) and its unsent tasks, which never began, go back to the front
    // of ready_: false then.
    bool write_requests(PoolProcess& process) {
        if (process.outbox.empty() || process.retiring) return true;
        while (process.outbox_sent < process.outbox.size()) {
            ssize_t n = ::write(process.requests.get(), process.outbox.data() + process.outbox_sent,
                                process.outbox.size() - process.outbox_sent);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            if (n < 0) {  // EPIPE: it is gone
                retire(process);
                return false;
            }
            process.outbox_sent += static_cast<std::size_t>(n);
        }
        while (!process.frame_ends.empty() && process.frame_ends.front() <= process.outbox_sent) {
            process.frame_ends.pop_front();
            --process.unsent;
        }
        if (process.outbox_sent == process.outbox.size()) {
            process.outbox.clear();
            process.outbox_sent = 0;
        }
        watch_writable(process, !process.outbox.empty());
        if (process.tasks.size() > process.unsent)
            if (auto first = running_.find(process.tasks.front()); first != running_.end() && !first->second.begun())
                begin(first->first);
        return true;
    }

    void watch_writable(PoolProcess& process, bool want) {
        if (want == process.awaiting_writable) return;
        process.awaiting_writable = want;
        if (!want) {
            loop_.unwatch(process.requests.get());
            return;
        }
        loop_.watch(process.requests.get(), EPOLLOUT, [this, pid = process.pid](std::uint32_t) {
            if (PoolProcess* p = pool_.find(pid)) write_requests(*p);
            dispatch();  // tasks taken back from a process found gone go to another
        });
    }

    // Closes the request pipe of `process` (it exits once idle); tasks whose requests were not written whole
    // never began: back to ready_.
    void retire(PoolProcess& process) {
        take_back(process, process.tasks.size() - std::min(process.unsent, process.tasks.size()));
        process.unsent = 0;
        process.frame_ends.clear();
        process.outbox.clear();
        process.outbox_sent = 0;
        watch_writable(process, false);
        pool_.retire(process);
    }

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

    bool runs_only_quick_tasks(const PoolProcess& process) const {
        for (const auto& tag : process.tasks) {
            auto task = running_.find(tag);
            if (task == running_.end() || !is_quick(task->second.delivery.message.task)) return false;
        }
        return true;
    }

    bool holds_only_quick_tasks() const {
        if (ready_.empty() && running_.empty()) return false;
        for (const auto& delivery : ready_)
            if (!is_quick(delivery.message.task)) return false;
        for (const auto& [tag, task] : running_)
            if (!is_quick(task.delivery.message.task)) return false;
        return true;
    }

    // The tasks of `process` after its first `keep`, which never began (queued behind the running one, or never
    // written): back to the front of ready_, in order, for the next free process.
    void take_back(PoolProcess& process, std::size_t keep) {
        while (process.tasks.size() > keep) {
            auto it = running_.find(process.tasks.back());
            process.tasks.pop_back();
            if (it == running_.end()) continue;
            ready_.push_front(std::move(it->second.delivery));
            running_.erase(it);
        }
    }

    const TaskPolicy* policy(const std::string& task) const {
        auto it = options_.policies.find(task);
        return it == options_.policies.end() ? nullptr : &it->second;
    }

    bool ignores_result(const protocol::TaskMessage& message) const {
        const TaskPolicy* p = policy(message.task);
        return message.ignore_result || (p && p->ignore_result.value_or(false));
    }

    // Queues the task's request for `process` (written by send_requests, once per turn).
    void hand(PoolProcess& process, broker::Delivery delivery) {
        const auto& message = delivery.message;
        const TaskPolicy* p = policy(message.task);
        auto pick = [](std::optional<double> own, std::optional<double> task, std::optional<double> node) {
            return own ? own : task ? task : node;
        };
        auto hard = pick(message.timelimit.hard, p ? p->time_limit : std::nullopt, options_.time_limit);
        auto soft = pick(message.timelimit.soft, p ? p->soft_time_limit : std::nullopt, options_.soft_time_limit);

        TaskCall call;
        call.id = message.id;
        call.name = message.task;
        call.args = message.args;
        call.kwargs = message.kwargs;
        call.retries = message.retries;
        std::string request = frame_text(request_json(call, soft, hard, options_.max_memory_per_child.has_value()));
        if (request.size() > max_frame_size) {
            // No pool process can take it, and handing it to each in turn would retire the whole pool for ever.
            std::string why = fmt::format("the task request is {} bytes, over the pool's limit of {} bytes",
                                          request.size(), max_frame_size);
            spdlog::error("Task {}[{}] cannot be run: {}", message.task, message.id, why);
            events_->failed(message.id, protocol::ExceptionInfo::of("EncodeError", why), why);
            std::optional<protocol::ResultMeta> result;
            if (!ignores_result(message)) {
                result = described(message, protocol::failure_result(
                                                message.id, protocol::ExceptionInfo::of("EncodeError", why), why));
                result->args = nlohmann::json::array();  // the result need not carry what was too large
                result->kwargs = nlohmann::json::object();
            }
            settle(std::move(delivery), true, std::move(result));
            return;
        }
        append_frame(process.outbox, request);
        process.frame_ends.push_back(process.outbox.size());
        ++process.unsent;
        Running task;
        task.pid = process.pid;
        task.hard_limit = hard;
        task.acks_late = !p || p->acks_late.value_or(true);
        task.ignore_result = ignores_result(message);
        std::string tag = delivery.tag;
        task.delivery = std::move(delivery);
        running_.emplace(tag, std::move(task));
        process.tasks.push_back(tag);  // it begins once written (send_requests), or after the tasks before it
    }

    // The task of `tag` is now the one its pool process runs: its hard limit starts counting.
    void begin(const std::string& tag) {
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

    void on_reply(PoolProcess& process, const nlohmann::json& reply) {
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

    void finish(const Running& task, const tasks::TaskOutcome& outcome) {
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
            if (!task.ignore_result)
                writes.result = described(message, protocol::success_result(message.id, outcome.result));
            events_->succeeded(message.id, outcome.result, runtime);
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
        if (task.acks_late) writes.ack = task.delivery;
        pending_->add(std::move(writes));
    }

    // The retry is published before the original is acked: a crash in between runs it twice, never zero times.
    Settlement retry(const Running& task, const tasks::TaskOutcome& outcome) {
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
            writes.result =
                described(message, protocol::retry_result(message.id, outcome.exception, outcome.traceback));
        return writes;
    }

    void time_limit_exceeded(const std::string& tag, double limit) {
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
        finish(task, outcome);
        after_task();
    }

    // A pool process died while running the task of `tag`.
    void lose_task(const std::string& tag, const std::string& how) {
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
            finish(task, outcome);
        } else {
            spdlog::warn("Task {}[{}]: its pool process {} died ({}); returned to queue {}", message.task, message.id,
                         task.pid, how, message.queue);
            consumer_->requeue(task.delivery);
        }
        after_task();
    }

    void after_task() {
        if (state_ == State::warm && running_.empty()) {
            drain();
            return;
        }
        fill(true);
        dispatch();
    }

    // The result of a message that is not run (or not any more), then its ack (worker/pending_writes.hpp).
    void settle(broker::Delivery delivery, bool ack, std::optional<protocol::ResultMeta> result) {
        Settlement writes;
        writes.result = std::move(result);
        if (ack) writes.ack = std::move(delivery);
        pending_->add(std::move(writes));
    }

    // `meta` with what a result tells about its task (Celery's result_extended fields).
    protocol::ResultMeta described(const protocol::TaskMessage& message, protocol::ResultMeta meta) const {
        meta.name = message.task;
        meta.worker = options_.name;
        meta.queue = message.queue;
        meta.args = message.args;
        meta.kwargs = message.kwargs;
        meta.retries = message.retries;
        return meta;
    }

    protocol::WorkerStatus worker_status() const {
        protocol::WorkerStatus status;
        status.freq = protocol::heartbeat_interval_seconds;
        for (const auto& [tag, task] : running_)
            if (task.begun()) ++status.active;
        status.processed = static_cast<long>(processed_);
        double load[3] = {0, 0, 0};
        if (::getloadavg(load, 3) == 3) status.loadavg.assign(load, load + 3);
        return status;
    }

    void log_activity() const {
        spdlog::info("{}: {} running, {} reserved, {} pool process(es)", options_.name, running_.size(), ready_.size(),
                     pool_.size());
        for (const auto& [tag, task] : running_)
            spdlog::info("  running {}[{}] in pool process {} for {:.1f}s", task.delivery.message.task,
                         task.delivery.message.id, task.pid,
                         std::chrono::duration<double>(Clock::now() - task.started).count());
    }

    // ---- shutdown ----

    void stop_consuming() {
        loop_.unwatch(consumer_->wakeup_fd());
        if (eta_timer_) loop_.cancel(eta_timer_);
        eta_timer_ = 0;
        for (const auto& delivery : ready_) consumer_->requeue(delivery);
        ready_.clear();
        ::sd_notify(0, "STOPPING=1");
    }

    // A signal sent to the node's whole process group (`kill -TERM -PGID`, timeout(1), an init script, Ctrl-C)
    // reaches the worker twice: directly, and relayed by the node shim, its parent, in the same group. Those two
    // copies are one request: a TERM/INT that arrives within stop_signal_echo of the one before, the same signal,
    // where exactly one of the two came from the parent, is counted once. A second TERM from the same sender (two
    // `ccmulti stop`s, or two `kill`s by hand) still counts: that is asking again, and makes the shutdown cold.
    static constexpr auto stop_signal_echo = std::chrono::seconds(2);

    void on_stop_signal(const signalfd_siginfo& info) {
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

    void warm_shutdown() {
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

    void cold_shutdown() {
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

    // Every pool process is told to exit (end of file on its requests); the loop ends when the last is reaped.
    void drain() {
        state_ = State::draining;
        for (const auto& [pid, process] : pool_.processes()) retire(*process);
        if (pool_.size() == 0) loop_.stop();
        loop_.after(std::chrono::seconds(10), [this] {  // a pool process that ignores end of file
            for (const auto& [pid, process] : pool_.processes()) Pool::kill(pid);
        });
    }

    std::string join_queues() const {
        std::string out;
        for (const auto& queue : options_.queues) out += (out.empty() ? "" : ",") + queue;
        return out;
    }

    const WorkerOptions& options_;
    const tasks::Registry& registry_;
    EventLoop loop_;
    Pool pool_;
    broker::Connection connection_;
    std::unique_ptr<broker::Consumer> consumer_;
    std::unique_ptr<InspectServer> inspect_;
    std::deque<broker::Delivery> ready_;
    std::map<std::string, Running> running_;  // by delivery tag
    std::map<std::string, int> losses_;       // pool processes lost per task id
    TaskTotals totals_;                       // tasks finished per name (bounded)
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

int run_worker(const WorkerOptions& options, const tasks::Registry& registry) {
    Node node(options, registry);
    return node.run();
}

}  // namespace ccmulti::worker
