// Celery's rpc:// result backend on RabbitMQ (broker.hpp: ResultStore), as celery/backends/rpc.py does it: results
// are not stored anywhere, they are sent back to the client that sent the task, on its own reply queue.
//
//  - The client (`ccmulti call --wait`, a Python client with backend="rpc://") declares a queue of its own before
//    it publishes (reply_to(): here an exclusive, auto-deleted queue named by a fresh uuid) and sets the task
//    message's reply_to to it.
//  - The node publishes each state it would store (STARTED with track_started, RETRY, SUCCESS, FAILURE, REVOKED)
//    to the default exchange "" with routing key = that reply_to (ResultMeta::reply_to), correlation_id = the task
//    id (codec.hpp: encode_result). A task without reply_to, or with ignore_result, sends nothing (as Celery's
//    worker). With publisher confirms: store_many() returns once RabbitMQ took every result, and the node acks
//    the task messages only after it (Consumer::settle), so a result is never lost to a node that dies between
//    the two; a crash before the ack runs the task again and sends its result again (harmless: a client takes the
//    first ready state of a task id). A reply queue that is gone (its client exited) drops the result, as
//    RabbitMQ drops every unroutable message.
//  - wait() reads the reply queue (no acks, as Celery's ResultConsumer) until a ready state of that task id
//    arrives; states of other tasks sent by this process are kept for their own wait().
//  - get() cannot work: nothing is stored by task id, so `ccmulti result ID` says so and how to read it.
//
// One connection, made on first use. A node's connection only publishes, at the node's pace: it negotiates no
// heartbeat (RabbitMQ would close it after two silent intervals of an idle node); before each batch what the
// broker sent is read (a close while idle: a new connection at once), and a socket that died silently fails the
// confirm wait, which the node's pending writes retry on a new connection. A client's connection (reply_to())
// keeps the URL's heartbeat, sent while it waits.
#pragma once

#include <map>
#include <memory>

#include "broker/amqp/connection.hpp"
#include "broker/broker.hpp"

namespace ccmulti::broker::amqp {

class RpcResultStore final : public ResultStore {
public:
    explicit RpcResultStore(AmqpUrl url) : url_(std::move(url)) {}

    // Throws Error (ConnectionError) when RabbitMQ cannot take the results now; sending them again is harmless.
    bool store(const ResultMeta& meta) override;
    void store_many(const std::vector<ResultMeta>& metas) override;
    // Throws UsageError: results are not stored by task id.
    std::optional<ResultMeta> get(const std::string& task_id) override;
    std::optional<ResultMeta> wait(const std::string& task_id,
                                   std::optional<std::chrono::milliseconds> timeout) override;
    std::optional<std::string> reply_to() override;

    static constexpr std::chrono::seconds confirm_timeout{30};

private:
    Connection& publisher();  // connected, confirms on, what arrived meanwhile read
    void received(Message&& message);
    UsageError not_stored(const std::string& task_id) const;

    AmqpUrl url_;
    std::unique_ptr<Connection> connection_;
    std::string queue_;                       // this process's reply queue, once declared
    std::map<std::string, ResultMeta> seen_;  // the latest state that arrived for each task id
};

}  // namespace ccmulti::broker::amqp
