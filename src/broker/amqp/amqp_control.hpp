// Remote control (broker.hpp: RemoteControl) on RabbitMQ, as kombu's pidbox does it, so `celery inspect
// ping|active|stats` sees ccmulti nodes and `ccmulti inspect` sees Python workers:
//   node:     queue <node>.celery.pidbox bound to the fanout exchange celery.pidbox (topology.hpp), consumed
//             with no acks; a request is the JSON body {"method", "arguments", "destination", "ticket",
//             "reply_to": {"exchange", "routing_key"}} with headers {"clock", "expires"}
//             (control_replies.hpp: answer_control_request).
//   reply:    published to reply_to.exchange (reply.celery.pidbox, direct) with reply_to.routing_key, the body
//             {"<node>": <reply>}, headers {"ticket", "clock"}, transient.
//   asking:   an exclusive auto-deleted queue <uuid>.reply.celery.pidbox bound to reply.celery.pidbox under the
//             uuid, the request published to celery.pidbox, replies read until every destination answered (plus
//             100 ms for a second process of one name) or the timeout.
// The node's mailbox is a Link of its own (link.hpp): its own connection, reconnecting by itself.
#pragma once

#include "broker/amqp/url.hpp"
#include "broker/broker.hpp"

namespace ccmulti::broker::amqp {

class AmqpControl final : public RemoteControl {
public:
    explicit AmqpControl(AmqpUrl url) : url_(std::move(url)) {}

    std::unique_ptr<ControlMailbox> mailbox(const std::string& node, Handler handler) override;
    std::map<std::string, nlohmann::json> broadcast(const std::string& method,
                                                    const std::vector<std::string>& destination,
                                                    std::chrono::milliseconds timeout) override;
    nlohmann::json broker_info() const override;

private:
    AmqpUrl url_;
};

}  // namespace ccmulti::broker::amqp
