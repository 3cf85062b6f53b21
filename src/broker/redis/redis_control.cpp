#include "broker/redis/redis_control.hpp"

#include "broker/redis/pidbox.hpp"
#include "broker/redis/pidbox_client.hpp"

namespace ccmulti::broker::redis {

using nlohmann::json;

namespace {

class RedisMailbox final : public ControlMailbox {
public:
    RedisMailbox(const RedisUrl& url, const std::string& node, RemoteControl::Handler handler)
        : pidbox_(url, node, std::move(handler)) {}
    int fd() const override { return pidbox_.fd(); }
    void on_readable() override { pidbox_.on_readable(); }
    std::optional<std::string> unavailable() const override { return pidbox_.unavailable(); }

private:
    RedisPidbox pidbox_;
};

}  // namespace

std::unique_ptr<ControlMailbox> RedisControl::mailbox(const std::string& node, Handler handler) {
    return std::make_unique<RedisMailbox>(url_, node, std::move(handler));
}

std::map<std::string, json> RedisControl::broadcast(const std::string& method,
                                                    const std::vector<std::string>& destination,
                                                    std::chrono::milliseconds timeout) {
    return redis::broadcast(url_, method, destination, timeout);
}

// As kombu's Connection.info() shows it; a sentinel URL: the first sentinel, the others as alternates.
json RedisControl::broker_info() const {
    const RedisUrl& broker = url_;
    json options = {{"visibility_timeout", broker.visibility_timeout.count()}};
    json alternates = json::array();
    std::string host = broker.host;
    int port = broker.port;
    if (broker.sentinel()) {
        options["master_name"] = broker.master_name;
        host = broker.sentinels.front().first;
        port = broker.sentinels.front().second;
        for (const auto& [name, number] : broker.sentinels)
            alternates.push_back("sentinel://" + host_port(name, number) + "/" + std::to_string(broker.db));
    }
    return {{"hostname", host},
            {"userid", broker.username ? json(*broker.username) : json(nullptr)},
            {"virtual_host", std::to_string(broker.db)},
            {"port", port},
            {"insist", false},
            {"ssl", false},
            {"transport", broker.sentinel() ? "sentinel" : "redis"},
            {"connect_timeout", 4},
            {"transport_options", options},
            {"login_method", nullptr},
            {"uri_prefix", nullptr},
            {"heartbeat", 120.0},
            {"failover_strategy", "round-robin"},
            {"alternates", alternates}};
}

}  // namespace ccmulti::broker::redis
