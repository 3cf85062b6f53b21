// Task messages on AMQP as kombu's py-amqp transport sends them, so Python Celery and ccmulti read each other's:
// the body is the plain JSON [args, kwargs, embed] (no base64: AMQP carries bytes), the protocol v2 headers are
// the message's AMQP headers table, and the properties are content_type application/json, content_encoding
// utf-8, correlation_id = task id, reply_to (when the sender waits on a reply queue), delivery_mode 2
// (persistent) and priority. Routing as Celery's default: the queue's own direct exchange, routing key = queue
// name (topology.hpp).
//
// A result for Celery's rpc:// backend (rpc_result_store.hpp) is what its RPCBackend.store_result publishes: the
// result meta as JSON ({task_id, status, result, traceback, children, date_done, …}), content_type
// application/json, content_encoding utf-8, correlation_id = task id, delivery_mode 1 (Celery's result_persistent
// default, False), sent to the default exchange "" with routing key = the task's reply_to.
#pragma once

#include "broker/amqp/connection.hpp"
#include "broker/broker.hpp"

namespace ccmulti::broker::amqp {

Message encode_task(const TaskMessage& task);

// The delivery for the worker: a message that cannot be decoded gets decode_error set (and id/task from what
// its headers say), never an exception. `queue` is the queue it was consumed from; `tag` the ack handle.
Delivery decode_task(const Message& message, const std::string& queue, std::string tag);

Message encode_result(const ResultMeta& meta);
// The result a reply carries, or nullopt when it is not one (not JSON, not a result meta). The task id is the
// body's, else the correlation id.
std::optional<ResultMeta> decode_result(const Message& message);

}  // namespace ccmulti::broker::amqp
