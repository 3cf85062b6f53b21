#include "broker/redis/backoff.hpp"

#include <algorithm>
#include <random>

namespace ccmulti::broker::redis {

std::chrono::milliseconds Backoff::next() {
    static thread_local std::mt19937 engine{std::random_device{}()};
    const double base = std::min(500.0 * static_cast<double>(1u << std::min(attempt_, 6)), 30000.0);
    ++attempt_;
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    return std::chrono::milliseconds(static_cast<long>(base * jitter(engine)));
}

}  // namespace ccmulti::broker::redis
