// The node handing reserved tasks to its pool processes: request frames written per turn, quick tasks queued
// behind one another (worker/node.hpp).
#include <spdlog/spdlog.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>


#include "protocol/task_message.hpp"
#include "util/error.hpp"
#include "worker/node.hpp"
#include "worker/pool_child.hpp"

namespace ccmulti::worker {

void Node::dispatch() {
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
    send_requests_after_turn();
}

void Node::send_requests_after_turn() {
    if (requests_deferred_) return;
    requests_deferred_ = true;
    loop_.defer([this] {
        requests_deferred_ = false;
        if (send_requests()) dispatch();
    });
}

bool Node::send_requests() {
    bool lost = false;
    for (const auto& [pid, process] : pool_.processes())
        if (!write_requests(*process)) lost = true;
    return lost;
}

bool Node::write_requests(PoolProcess& process) {
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

void Node::watch_writable(PoolProcess& process, bool want) {
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

void Node::retire(PoolProcess& process) {
    take_back(process, process.tasks.size() - std::min(process.unsent, process.tasks.size()));
    process.unsent = 0;
    process.frame_ends.clear();
    process.outbox.clear();
    process.outbox_sent = 0;
    watch_writable(process, false);
    pool_.retire(process);
}

bool Node::runs_only_quick_tasks(const PoolProcess& process) const {
    const std::string* last = nullptr;  // as in holds_only_quick_tasks: one lookup per name in a row
    for (const auto& tag : process.tasks) {
        auto task = running_.find(tag);
        if (task == running_.end()) return false;
        const std::string& name = task->second.delivery.message.task;
        if (last && *last == name) continue;
        if (!is_quick(name)) return false;
        last = &name;
    }
    return true;
}

bool Node::holds_only_quick_tasks() const {
    if (ready_.empty() && running_.empty()) return false;
    // Asked at every fill(), over a window of up to hundreds of tasks, mostly of one name: each name is looked
    // up once in a row, not once per task.
    const std::string* last = nullptr;
    auto quick = [&](const std::string& task) {
        if (last && *last == task) return true;
        last = &task;
        return is_quick(task);
    };
    for (const auto& delivery : ready_)
        if (!quick(delivery.message.task)) return false;
    for (const auto& [tag, task] : running_)
        if (!quick(task.delivery.message.task)) return false;
    return true;
}

void Node::take_back(PoolProcess& process, std::size_t keep) {
    while (process.tasks.size() > keep) {
        auto it = running_.find(process.tasks.back());
        process.tasks.pop_back();
        if (it == running_.end()) continue;
        ready_.push_front(std::move(it->second.delivery));
        running_.erase(it);
    }
}

void Node::hand(PoolProcess& process, broker::Delivery delivery) {
    const auto& message = delivery.message;
    const TaskPolicy* p = policy(message.task);
    auto pick = [](std::optional<double> own, std::optional<double> task, std::optional<double> node) {
        return own ? own : task ? task : node;
    };
    auto hard = pick(message.timelimit.hard, p ? p->time_limit : std::nullopt, options_.time_limit);
    auto soft = pick(message.timelimit.soft, p ? p->soft_time_limit : std::nullopt, options_.soft_time_limit);

    std::string request = request_text(message.id, message.task, message.args, message.kwargs, message.retries, soft,
                                       hard, options_.max_memory_per_child.has_value());
    if (request.size() > max_frame_size) {
        // No pool process can take it, and handing it to each in turn would retire the whole pool for ever.
        std::string why = fmt::format("the task request is {} bytes, over the pool's limit of {} bytes", request.size(),
                                      max_frame_size);
        spdlog::error("Task {}[{}] cannot be run: {}", message.task, message.id, why);
        events_->failed(message.id, protocol::ExceptionInfo::of("EncodeError", why), why);
        std::optional<protocol::ResultMeta> result;
        if (!ignores_result(message)) {
            result = described(
                message, protocol::failure_result(message.id, protocol::ExceptionInfo::of("EncodeError", why), why));
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

}  // namespace ccmulti::worker
