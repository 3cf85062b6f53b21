#include "broker/amqp/table.hpp"

#include <cmath>

namespace ccmulti::broker::amqp {

using nlohmann::json;

std::string text_of(const amqp_bytes_t& bytes) {
    return bytes.len ? std::string(static_cast<const char*>(bytes.bytes), bytes.len) : std::string();
}

namespace {

json field_to_json(const amqp_field_value_t& field) {
    switch (field.kind) {
        case AMQP_FIELD_KIND_BOOLEAN:
            return field.value.boolean != 0;
        case AMQP_FIELD_KIND_I8:
            return field.value.i8;
        case AMQP_FIELD_KIND_U8:
            return field.value.u8;
        case AMQP_FIELD_KIND_I16:
            return field.value.i16;
        case AMQP_FIELD_KIND_U16:
            return field.value.u16;
        case AMQP_FIELD_KIND_I32:
            return field.value.i32;
        case AMQP_FIELD_KIND_U32:
            return field.value.u32;
        case AMQP_FIELD_KIND_I64:
            return field.value.i64;
        case AMQP_FIELD_KIND_U64:
            return field.value.u64;
        case AMQP_FIELD_KIND_TIMESTAMP:
            return field.value.u64;
        case AMQP_FIELD_KIND_F32:
            return field.value.f32;
        case AMQP_FIELD_KIND_F64:
            return field.value.f64;
        case AMQP_FIELD_KIND_DECIMAL:
            return static_cast<double>(field.value.decimal.value) / std::pow(10.0, field.value.decimal.decimals);
        case AMQP_FIELD_KIND_UTF8:
        case AMQP_FIELD_KIND_BYTES:
            return text_of(field.value.bytes);
        case AMQP_FIELD_KIND_ARRAY: {
            json out = json::array();
            for (int i = 0; i < field.value.array.num_entries; ++i)
                out.push_back(field_to_json(field.value.array.entries[i]));
            return out;
        }
        case AMQP_FIELD_KIND_TABLE:
            return to_json(field.value.table);
        default:
            return nullptr;  // void
    }
}

}  // namespace

json to_json(const amqp_table_t& table) {
    json out = json::object();
    for (int i = 0; i < table.num_entries; ++i)
        out[text_of(table.entries[i].key)] = field_to_json(table.entries[i].value);
    return out;
}

amqp_bytes_t TableBuilder::bytes(const std::string& text) {
    const std::string& kept = strings_.emplace_back(text);
    amqp_bytes_t out;
    out.len = kept.size();
    out.bytes = const_cast<char*>(kept.data());
    return out;
}

amqp_field_value_t TableBuilder::value(const json& value) {
    amqp_field_value_t field{};
    if (value.is_boolean()) {
        field.kind = AMQP_FIELD_KIND_BOOLEAN;
        field.value.boolean = value.get<bool>() ? 1 : 0;
    } else if (value.is_number_integer()) {
        auto number = value.is_number_unsigned() ? static_cast<std::int64_t>(value.get<std::uint64_t>())
                                                 : value.get<std::int64_t>();
        if (number >= INT32_MIN && number <= INT32_MAX) {
            field.kind = AMQP_FIELD_KIND_I32;
            field.value.i32 = static_cast<std::int32_t>(number);
        } else {
            field.kind = AMQP_FIELD_KIND_I64;
            field.value.i64 = number;
        }
    } else if (value.is_number_float()) {
        field.kind = AMQP_FIELD_KIND_F64;
        field.value.f64 = value.get<double>();
    } else if (value.is_string()) {
        field.kind = AMQP_FIELD_KIND_UTF8;
        field.value.bytes = bytes(value.get<std::string>());
    } else if (value.is_array()) {
        auto& items = arrays_.emplace_back();
        for (const auto& item : value) items.push_back(this->value(item));
        field.kind = AMQP_FIELD_KIND_ARRAY;
        field.value.array.num_entries = static_cast<int>(items.size());
        field.value.array.entries = items.data();
    } else if (value.is_object()) {
        field.kind = AMQP_FIELD_KIND_TABLE;
        field.value.table = build(value);
    } else {
        field.kind = AMQP_FIELD_KIND_VOID;
    }
    return field;
}

amqp_table_t TableBuilder::build(const json& object) {
    amqp_table_t table{0, nullptr};
    if (!object.is_object() || object.empty()) return table;
    auto& entries = entries_.emplace_back();
    entries.reserve(object.size());  // built in full before anything points into it
    for (const auto& [key, item] : object.items()) {
        amqp_table_entry_t entry{};
        entry.key = bytes(key);
        entry.value = value(item);
        entries.push_back(entry);
    }
    table.num_entries = static_cast<int>(entries.size());
    table.entries = entries.data();
    return table;
}

}  // namespace ccmulti::broker::amqp
