#include "broker/redis/keys.hpp"

#include <algorithm>

namespace ccmulti::broker::redis {

int priority_step(int priority) {
    priority = std::clamp(priority, 0, 9);
    int step = 0;
    for (int candidate : priority_steps)
        if (candidate <= priority) step = candidate;
    return step;
}

std::string queue_key(std::string_view queue, int priority) {
    int step = priority_step(priority);
    std::string key(queue);
    if (step != 0) key += std::string(sep) + std::to_string(step);
    return key;
}

std::string queue_of_key(std::string_view key) {
    auto at = key.rfind(sep);
    return std::string(at == std::string_view::npos ? key : key.substr(0, at));
}

std::string binding_key(std::string_view exchange) {
    return binding_prefix + std::string(exchange);
}

std::string binding_member(std::string_view routing_key, std::string_view queue) {
    return std::string(routing_key) + std::string(sep) + std::string(sep) + std::string(queue);
}

std::string result_key(std::string_view task_id) {
    return result_prefix + std::string(task_id);
}

std::string parked_key(std::string_view consumer_id) {
    return "_ccmulti.parked." + std::string(consumer_id);
}

}  // namespace ccmulti::broker::redis
