// The RabbitMQ transport as the module ccmulti-amqp.so (broker/transport_module.hpp): its entry point.
#include "broker/amqp/amqp_broker.hpp"
#include "broker/amqp/amqp_control.hpp"
#include "broker/amqp/rpc_result_store.hpp"
#include "broker/amqp/url.hpp"
#include "broker/disabled_result_store.hpp"
#include "broker/transport_module.hpp"
#include "platform/module.hpp"

CCMULTI_MODULE_VERSION;

namespace ccmulti::broker::amqp {

namespace {

std::unique_ptr<Broker> make_broker(const std::string& url) {
    return std::make_unique<AmqpBroker>(parse_amqp_url(url));
}

// RabbitMQ keeps no results: without a result backend they are dropped, as a Python worker without
// result_backend drops them.
std::unique_ptr<ResultStore> make_own_results(const std::string& url) {
    return std::make_unique<DisabledResultStore>(parse_amqp_url(url).display());
}

std::unique_ptr<ResultStore> make_reply_results(const std::string& url) {
    return std::make_unique<RpcResultStore>(parse_amqp_url(url));
}

std::unique_ptr<RemoteControl> make_remote_control(const std::string& url) {
    return std::make_unique<AmqpControl>(parse_amqp_url(url));
}

constexpr TransportModule transport{make_broker, make_own_results, make_reply_results, make_remote_control};

}  // namespace

}  // namespace ccmulti::broker::amqp

extern "C" const ccmulti::broker::TransportModule* ccmulti_amqp_transport() {
    return &ccmulti::broker::amqp::transport;
}
