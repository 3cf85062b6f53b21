// Small helpers for writing optional fields into JSON documents (envelopes, result meta): an absent value is
// JSON null, as Celery writes it.
#pragma once

#include <optional>

#include <nlohmann/json.hpp>

namespace ccmulti::protocol {

template <class T>
nlohmann::json or_null(const std::optional<T>& value) {
    return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

}  // namespace ccmulti::protocol
