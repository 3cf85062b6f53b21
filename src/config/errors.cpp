#include "config/errors.hpp"

#include <algorithm>
#include <tuple>

#include "util/strings.hpp"

namespace ccmulti::config {

std::string Location::str() const {
    if (line <= 0) return source;
    return source + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string Location::origin() const {
    if (line <= 0) return source;
    return source + ":" + std::to_string(line);
}

ConfigError::ConfigError(std::vector<std::string> lines) : UsageError(join(lines, "\n")), lines_(std::move(lines)) {}

void ConfigErrors::add(const Location& where, const std::string& message) {
    auto it = std::find(sources_.begin(), sources_.end(), where.source);
    std::size_t rank = static_cast<std::size_t>(it - sources_.begin());
    if (it == sources_.end()) sources_.push_back(where.source);
    items_.push_back({rank, where.line, where.column, where.source.empty() ? message : where.str() + ": " + message});
}

void ConfigErrors::add(const std::string& line) {
    add(Location{}, line);
}

std::vector<std::string> ConfigErrors::lines() const {
    std::vector<Item> sorted = items_;
    std::stable_sort(sorted.begin(), sorted.end(), [](const Item& a, const Item& b) {
        return std::tie(a.source, a.line, a.column) < std::tie(b.source, b.line, b.column);
    });
    std::vector<std::string> out;
    for (auto& item : sorted) out.push_back(std::move(item.text));
    return out;
}

void ConfigErrors::throw_if_any() const {
    if (!items_.empty()) throw ConfigError(lines());
}

}  // namespace ccmulti::config
