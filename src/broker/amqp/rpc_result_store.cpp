#include "broker/amqp/rpc_result_store.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include "broker/amqp/codec.hpp"

namespace ccmulti::broker::amqp {

using SteadyClock = std::chrono::steady_clock;

namespace {

// The longest one read blocks while a client waits without a timeout (rabbitmq-c sends heartbeats meanwhile).
constexpr std::chrono::seconds wait_slice{60};

}  // namespace

Connection& RpcResultStore::publisher() {
    if (connection_) {
        try {
            connection_->poll([this](Message&& message) { received(std::move(message)); });
        } catch (const ConnectionError& error) {
            spdlog::debug("the rpc:// results connection was lost ({}); connecting again", error.what());
            connection_.reset();
        }
    }
    if (!connection_) {
        AmqpUrl url = url_;
        url.heartbeat = 0;  // see the header: a publishing node's connection idles
        auto connection = std::make_unique<Connection>(url, "ccmulti results " + std::to_string(::getpid()));
        connection->confirm_select();
        connection_ = std::move(connection);
    }
    return *connection_;
}

bool RpcResultStore::store(const ResultMeta& meta) {
    store_many({meta});
    return true;
}

void RpcResultStore::store_many(const std::vector<ResultMeta>& metas) {
    try {
        Connection* amqp = nullptr;
        std::uint64_t last = 0;
        for (const auto& meta : metas) {
            if (meta.reply_to.empty()) continue;  // nobody waits on a queue for it (Celery's worker sends nothing)
            if (!amqp) amqp = &publisher();
            last = amqp->publish("", meta.reply_to, encode_result(meta));
        }
        if (amqp) amqp->wait_confirms(last, confirm_timeout);
    } catch (const ConnectionError&) {
        connection_.reset();  // the next batch connects again; its results are sent again
        throw;
    }
}

UsageError RpcResultStore::not_stored(const std::string& task_id) const {
    return UsageError("result backend rpc:// stores no results: task " + task_id +
                      "'s was sent only to the reply queue of the client that sent it; read it there (call --wait, "
                      "or AsyncResult.get() in that Python client), or give the nodes and this command a backend "
                      "that keeps results (--result-backend redis://HOST[:PORT][/DB])");
}

std::optional<ResultMeta> RpcResultStore::get(const std::string& task_id) {
    throw not_stored(task_id);
}

std::optional<std::string> RpcResultStore::reply_to() {
    if (queue_.empty()) {
        if (!connection_) {
            auto connection = std::make_unique<Connection>(url_, "ccmulti client " + std::to_string(::getpid()));
            connection->confirm_select();
            connection_ = std::move(connection);
        }
        std::string queue = protocol::new_uuid();
        connection_->declare_queue(queue, false, true, true);
        connection_->consume(queue, queue, true);
        queue_ = std::move(queue);
    }
    return queue_;
}

void RpcResultStore::received(Message&& message) {
    auto meta = decode_result(message);
    if (!meta) {
        spdlog::debug("reply queue {}: ignored a message that is not a task result", queue_);
        return;
    }
    auto [it, inserted] = seen_.try_emplace(meta->task_id, *meta);
    // A ready state stays: a task run twice (a redelivery) may send STARTED after its SUCCESS.
    if (!inserted && !protocol::is_ready(it->second.status)) it->second = std::move(*meta);
}

std::optional<ResultMeta> RpcResultStore::wait(const std::string& task_id,
                                               std::optional<std::chrono::milliseconds> timeout) {
    if (queue_.empty() || !connection_) throw not_stored(task_id);
    std::optional<SteadyClock::time_point> deadline;
    if (timeout) deadline = SteadyClock::now() + *timeout;
    try {
        for (;;) {
            if (auto it = seen_.find(task_id); it != seen_.end() && protocol::is_ready(it->second.status)) {
                ResultMeta ready = std::move(it->second);
                seen_.erase(it);
                return ready;
            }
            auto now = SteadyClock::now();
            if (deadline && now >= *deadline) break;
            auto until = now + wait_slice;
            if (deadline) until = std::min(until, *deadline);
            connection_->poll([this](Message&& message) { received(std::move(message)); }, until);
        }
    } catch (const ConnectionError& error) {
        connection_.reset();
        throw Error("lost the connection to RabbitMQ while waiting for task " + task_id + " (" + error.what() +
                    "): its result goes to this process's reply queue, which went with the connection");
    }
    auto it = seen_.find(task_id);
    if (it == seen_.end()) return std::nullopt;
    return it->second;
}

}  // namespace ccmulti::broker::amqp
