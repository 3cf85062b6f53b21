// Celery's DisabledBackend: the store of a broker that keeps no results (AMQP) when no result backend is
// configured. Results are dropped, as a Python worker without result_backend drops them; asking for one says how
// to configure a backend instead of waiting for ever.
#pragma once

#include "broker/broker.hpp"
#include "util/error.hpp"

namespace ccmulti::broker {

class DisabledResultStore final : public ResultStore {
public:
    explicit DisabledResultStore(std::string broker) : broker_(std::move(broker)) {}

    bool store(const ResultMeta&) override { return true; }
    void store_many(const std::vector<ResultMeta>&) override {}
    std::optional<ResultMeta> get(const std::string& task_id) override { throw no_backend(task_id); }
    std::optional<ResultMeta> wait(const std::string& task_id, std::optional<std::chrono::milliseconds>) override {
        throw no_backend(task_id);
    }

private:
    UsageError no_backend(const std::string& task_id) const {
        return UsageError("no result backend: the broker " + broker_ + " keeps no results, so task " + task_id +
                          "'s cannot be read; give --result-backend redis://HOST[:PORT][/DB] (or [results] url) to "
                          "the nodes and to this command, or rpc:// to wait for results with call --wait");
    }

    std::string broker_;
};

}  // namespace ccmulti::broker
