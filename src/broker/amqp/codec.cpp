#include "broker/amqp/codec.hpp"

namespace ccmulti::broker::amqp {

using nlohmann::json;

Message encode_task(const TaskMessage& task) {
    json envelope = protocol::encode(task);
    Message message;
    message.body = json::array({task.args, task.kwargs, task.embed}).dump();
    message.content_type = "application/json";
    message.content_encoding = "utf-8";
    message.correlation_id = task.id;
    message.headers = std::move(envelope["headers"]);
    message.priority = task.priority;
    message.persistent = true;
    return message;
}

Delivery decode_task(const Message& message, const std::string& queue, std::string tag) {
    Delivery delivery;
    delivery.tag = std::move(tag);
    json envelope = {
        {"body", message.body},
        {"content-type", message.content_type.empty() ? "application/json" : message.content_type},
        {"content-encoding", message.content_encoding.empty() ? "utf-8" : message.content_encoding},
        {"headers", message.headers},
        {"properties",
         {{"correlation_id", message.correlation_id},
          {"delivery_info", {{"exchange", message.exchange}, {"routing_key", queue}}},
          {"priority", message.priority},
          {"body_encoding", "utf-8"}}},
    };
    try {
        delivery.message = protocol::decode(envelope);
    } catch (const protocol::ProtocolError& error) {
        delivery.decode_error = error.what();
        auto text = [&](const char* key) {
            auto it = message.headers.find(key);
            return it != message.headers.end() && it->is_string() ? it->get<std::string>() : std::string();
        };
        delivery.message.id = text("id").empty() ? message.correlation_id : text("id");
        delivery.message.task = text("task");
    }
    delivery.message.queue = queue;
    delivery.message.redelivered = delivery.message.redelivered || message.redelivered;
    return delivery;
}

}  // namespace ccmulti::broker::amqp
