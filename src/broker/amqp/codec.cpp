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
    message.reply_to = task.reply_to;
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
          {"reply_to", message.reply_to},
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
        delivery.message.reply_to = message.reply_to;  // the FAILURE stored for it goes where its sender waits
    }
    delivery.message.queue = queue;
    delivery.message.redelivered = delivery.message.redelivered || message.redelivered;
    return delivery;
}

Message encode_result(const ResultMeta& meta) {
    Message message;
    message.body = protocol::to_json_text(meta);
    message.content_type = "application/json";
    message.content_encoding = "utf-8";
    message.correlation_id = meta.task_id;
    message.persistent = false;
    return message;
}

std::optional<ResultMeta> decode_result(const Message& message) {
    json body = json::parse(message.body, nullptr, false);
    if (!body.is_object()) return std::nullopt;
    if (auto id = body.find("task_id"); (id == body.end() || !id->is_string()) && !message.correlation_id.empty())
        body["task_id"] = message.correlation_id;
    try {
        return protocol::result_from_json(body);
    } catch (const protocol::ProtocolError&) {
        return std::nullopt;
    } catch (const json::exception&) {
        return std::nullopt;
    }
}

}  // namespace ccmulti::broker::amqp
