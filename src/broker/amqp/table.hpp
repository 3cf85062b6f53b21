// AMQP field tables (message headers, queue arguments) to and from JSON, as py-amqp maps Python values: None is
// void, bool is boolean, int is a signed 32-bit or 64-bit integer, float is a double, str a long string, list an
// array, dict a table; a timestamp reads as its unix seconds, decimals as numbers, byte arrays as strings.
#pragma once

#include <amqp.h>

#include <deque>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ccmulti::broker::amqp {

nlohmann::json to_json(const amqp_table_t& table);
std::string text_of(const amqp_bytes_t& bytes);  // a copy of the bytes

// Owns the memory of the tables it builds: keep it alive until the table has been sent.
class TableBuilder {
public:
    amqp_table_t build(const nlohmann::json& object);  // a JSON object; anything else gives an empty table

private:
    amqp_field_value_t value(const nlohmann::json& value);
    amqp_bytes_t bytes(const std::string& text);

    std::deque<std::string> strings_;
    std::deque<std::vector<amqp_table_entry_t>> entries_;
    std::deque<std::vector<amqp_field_value_t>> arrays_;
};

}  // namespace ccmulti::broker::amqp
