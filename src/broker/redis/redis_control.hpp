// Remote control (broker.hpp: RemoteControl) on Redis: the node's mailbox is RedisPidbox (pidbox.hpp), the asking
// side pidbox_client.hpp's broadcast, and stats' "broker" reads as kombu's Redis transport shows itself.
#pragma once

#include "broker/broker.hpp"
#include "broker/redis/url.hpp"

namespace ccmulti::broker::redis {

class RedisControl final : public RemoteControl {
public:
    explicit RedisControl(RedisUrl url) : url_(std::move(url)) {}

    std::unique_ptr<ControlMailbox> mailbox(const std::string& node, Handler handler) override;
    std::map<std::string, nlohmann::json> broadcast(const std::string& method,
                                                    const std::vector<std::string>& destination,
                                                    std::chrono::milliseconds timeout) override;
    nlohmann::json broker_info() const override;

private:
    RedisUrl url_;
};

}  // namespace ccmulti::broker::redis
