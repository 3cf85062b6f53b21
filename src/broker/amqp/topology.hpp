// Exchanges, queues and bindings as kombu declares them for Celery's default routing, so a queue ccmulti declares
// is the one a Python worker or client declares (and the other way round):
//   task queue Q:  direct exchange Q (durable), queue Q (durable, not exclusive, not auto-deleted, with the URL's
//                  x-… arguments), bound with routing key Q.
//   remote control: fanout exchange celery.pidbox and direct exchange reply.celery.pidbox (both transient); a
//                  node's queue <node>.celery.pidbox (auto-deleted, x-message-ttl 300 s, x-expires 10 s, as
//                  Celery's control_queue_ttl / control_queue_expires), bound to celery.pidbox.
//   events:        topic exchange celeryev (durable), as Celery's get_exchange on AMQP (amqp_events.hpp).
// A queue that already exists with other arguments (a quorum queue declared by someone else, another
// x-max-priority) is refused by RabbitMQ with PRECONDITION_FAILED: it is then accepted as it is (declared
// passively, noted at debug level), so nodes consume queues whatever declared them.
#pragma once

#include <string>

#include "broker/amqp/connection.hpp"

namespace ccmulti::broker::amqp {

inline constexpr const char* pidbox_exchange = "celery.pidbox";
inline constexpr const char* reply_exchange = "reply.celery.pidbox";

// The URL's x-… options as a queue-arguments table (integers as integers).
nlohmann::json queue_arguments(const AmqpUrl& url);

void declare_task_queue(Connection& connection, const std::string& queue);
// Celery's event exchange; one that exists with another type or durability is used as it is.
void declare_event_exchange(Connection& connection);

// A queue declared with `arguments`, or passively when it exists with others. Returns its counts.
Connection::QueueInfo declare_or_accept(Connection& connection, const std::string& queue, bool durable,
                                        bool auto_delete, const nlohmann::json& arguments);

}  // namespace ccmulti::broker::amqp
