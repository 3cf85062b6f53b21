// A transport built as a module of its own (platform/module.hpp says why): the RabbitMQ one, whose rabbitmq-c
// brings OpenSSL into every process that maps it. connect.cpp loads it the first time a URL names it, and asks it
// only for these; everything else about the transport stays inside its folder.
#pragma once

#include <memory>
#include <string>

#include "broker/broker.hpp"

namespace ccmulti::broker {

struct TransportModule {
    std::unique_ptr<Broker> (*broker)(const std::string& url);
    // The store results go to when no result backend URL names another: the transport's own.
    std::unique_ptr<ResultStore> (*own_results)(const std::string& url);
    // Results sent back over the broker to the reply queue each task names (Celery's rpc:// backend).
    std::unique_ptr<ResultStore> (*reply_results)(const std::string& url);
    std::unique_ptr<RemoteControl> (*remote_control)(const std::string& url);
};

// What the RabbitMQ module (ccmulti-amqp.so, broker/amqp/module.cpp) exports.
inline constexpr const char* amqp_module = "ccmulti-amqp";
inline constexpr const char* amqp_module_entry = "ccmulti_amqp_transport";
using TransportEntry = const TransportModule* (*)();

}  // namespace ccmulti::broker
