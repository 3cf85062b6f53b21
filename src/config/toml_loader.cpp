// TOML → document tree, with toml++ (positions from each node's and key's source_region).
#include <algorithm>
#include <sstream>
#include <utility>

#include <toml++/toml.h>

#include "config/loader.hpp"

namespace ccmulti::config {

namespace {

class TomlConverter {
public:
    TomlConverter(const std::string& file, ConfigErrors& errors) : file_(file), errors_(errors) {}

    Location at(const toml::source_region& region) const {
        return {file_, static_cast<int>(region.begin.line), static_cast<int>(region.begin.column)};
    }

    // Nothing comes back for a value past the depth or size guards; that has been reported.
    std::optional<Value> convert(const toml::node& node, int depth) {
        Value value;
        value.at = at(node.source());
        if (depth > max_depth || ++count_ > max_values) {
            if (!guard_reported_) errors_.add(value.at, "document nested too deeply or too large");
            guard_reported_ = true;
            return std::nullopt;
        }
        switch (node.type()) {
            case toml::node_type::table:
                value.kind = Value::Kind::table;
                for (auto&& [key, child] : *node.as_table()) {
                    auto converted = convert(child, depth + 1);
                    if (!converted) return std::nullopt;
                    value.table.push_back({std::string(key.str()), at(key.source()), std::move(*converted)});
                }
                // toml++ keeps a table sorted by key; file order is what [nodes] order and messages need.
                std::stable_sort(value.table.begin(), value.table.end(), [](const Entry& a, const Entry& b) {
                    return std::pair(a.key_at.line, a.key_at.column) < std::pair(b.key_at.line, b.key_at.column);
                });
                break;
            case toml::node_type::array:
                value.kind = Value::Kind::array;
                for (const auto& child : *node.as_array()) {
                    auto converted = convert(child, depth + 1);
                    if (!converted) return std::nullopt;
                    value.array.push_back(std::move(*converted));
                }
                break;
            case toml::node_type::string:
                value.kind = Value::Kind::string;
                value.string = node.as_string()->get();
                break;
            case toml::node_type::integer:
                value.kind = Value::Kind::integer;
                value.integer = node.as_integer()->get();
                break;
            case toml::node_type::floating_point:
                value.kind = Value::Kind::floating;
                value.floating = node.as_floating_point()->get();
                break;
            case toml::node_type::boolean:
                value.kind = Value::Kind::boolean;
                value.boolean = node.as_boolean()->get();
                break;
            case toml::node_type::date:
            case toml::node_type::time:
            case toml::node_type::date_time: {
                value.kind = Value::Kind::datetime;
                std::ostringstream text;
                node.visit([&text](const auto& v) { text << v; });
                value.string = text.str();
                break;
            }
            case toml::node_type::none:
                break;
        }
        return value;
    }

private:
    const std::string& file_;
    ConfigErrors& errors_;
    std::size_t count_ = 0;
    bool guard_reported_ = false;
};

}  // namespace

std::optional<Value> parse_toml_document(std::string_view text, const std::string& file, ConfigErrors& errors) {
    toml::table root;
    try {
        root = toml::parse(text, std::string_view(file));
    } catch (const toml::parse_error& e) {
        Location where{file, static_cast<int>(e.source().begin.line), static_cast<int>(e.source().begin.column)};
        errors.add(where, "TOML syntax error: " + std::string(e.description()));
        return std::nullopt;
    }
    return TomlConverter(file, errors).convert(root, 0);
}

}  // namespace ccmulti::config
