#include "protocol/fast_decode.hpp"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <new>
#include <string>

#include "protocol/base64.hpp"

namespace ccmulti::protocol::detail {

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

// Envelopes nest three levels; anything past this goes the DOM way, whose limit is max_message_depth.
constexpr std::size_t fast_max_depth = 64;
static_assert(fast_max_depth < max_message_depth);

// Thrown inside this file only, for "not the common case": decode_string() then takes the DOM path.
struct NotFast {};

// Each key of interest at most once per object: nlohmann keeps the last of duplicates, this parser would see
// both; such messages go the DOM way.
template <std::size_t N>
class Seen {
public:
    explicit Seen(const std::array<std::string_view, N>& keys) : keys_(keys) {}
    // The index of `key` among the keys, N when it is none of them; NotFast on a second sighting.
    std::size_t index(std::string_view key) {
        for (std::size_t i = 0; i < N; ++i)
            if (keys_[i] == key) {
                if (seen_[i]) throw NotFast{};
                seen_[i] = true;
                return i;
            }
        return N;
    }

private:
    const std::array<std::string_view, N>& keys_;
    std::array<bool, N> seen_{};
};

std::string_view string_of(element value) {
    std::string_view text;
    if (value.get_string().get(text)) throw NotFast{};
    return text;
}

std::optional<std::string> optional_string(element value) {
    if (value.is_null()) return std::nullopt;
    return std::string(string_of(value));
}

int int_of(element value) {
    std::int64_t number;
    if (value.type() != element_type::INT64 || value.get_int64().get(number) || number < INT_MIN || number > INT_MAX)
        throw NotFast{};
    return static_cast<int>(number);
}

bool true_boolean(element value) {  // read_bool(): true only for a JSON true, anything else is false
    bool flag = false;
    return value.type() == element_type::BOOL && !value.get_bool().get(flag) && flag;
}

std::optional<TimePoint> time_of(element value) {
    if (value.is_null()) return std::nullopt;
    auto time = parse_iso8601(std::string(string_of(value)));  // a kombu datetime object goes the DOM way
    if (!time) throw NotFast{};
    return time;
}

std::optional<double> limit_of(element value) {
    if (value.is_null()) return std::nullopt;
    double seconds;
    switch (value.type()) {
        case element_type::INT64:
            seconds = static_cast<double>(value.get_int64().value_unsafe());
            break;
        case element_type::UINT64:
            seconds = static_cast<double>(value.get_uint64().value_unsafe());
            break;
        case element_type::DOUBLE:
            seconds = value.get_double().value_unsafe();
            break;
        default:
            throw NotFast{};
    }
    if (!(seconds >= 0 && seconds <= 1e9)) throw NotFast{};  // refused the DOM way, with its message
    if (seconds == 0) return std::nullopt;
    return seconds;
}

constexpr std::array<std::string_view, 15> header_keys{
    "id",      "task",      "eta",    "expires",       "retries",     "group",       "group_index", "timelimit",
    "root_id", "parent_id", "origin", "ignore_result", "redelivered", "compression", "kwargsrepr"};

void read_headers(element headers, TaskMessage& message, std::optional<std::string>& id) {
    simdjson::dom::object object;
    if (headers.get_object().get(object)) throw NotFast{};
    Seen seen(header_keys);
    bool has_task = false;
    for (auto field : object) {
        element value = field.value;
        switch (seen.index(field.key)) {
            case 0:
                id = optional_string(value);
                break;
            case 1:
                message.task = optional_string(value).value_or("");
                has_task = true;
                break;
            case 2:
                message.eta = time_of(value);
                break;
            case 3:
                message.expires = time_of(value);
                break;
            case 4:
                message.retries = value.is_null() ? 0 : int_of(value);
                break;
            case 5:
                message.group = optional_string(value);
                break;
            case 6:
                if (value.type() == element_type::INT64 || value.type() == element_type::UINT64)
                    message.group_index = int_of(value);
                break;
            case 7: {
                if (value.is_null()) break;
                simdjson::dom::array pair;
                if (value.get_array().get(pair) || pair.size() != 2) throw NotFast{};
                message.timelimit = {limit_of(pair.at(0).value_unsafe()), limit_of(pair.at(1).value_unsafe())};
                break;
            }
            case 8:
                message.root_id = optional_string(value);
                break;
            case 9:
                message.parent_id = optional_string(value);
                break;
            case 10:
                message.origin = optional_string(value).value_or("");
                break;
            case 11:
                message.ignore_result = true_boolean(value);
                break;
            case 12:
                message.redelivered = true_boolean(value);
                break;
            case 13:
                throw NotFast{};  // compressed: refused the DOM way
            default:
                break;  // kwargsrepr, argsrepr, lang, shadow, ...: not kept
        }
    }
    if (!has_task || message.task.empty()) throw NotFast{};  // v1, or no task: the DOM way says which
}

constexpr std::array<std::string_view, 6> property_keys{"correlation_id", "body_encoding", "delivery_info",
                                                        "priority",       "delivery_tag",  "reply_to"};

// Returns the body encoding.
std::string_view read_properties(element properties, TaskMessage& message, std::string& correlation_id) {
    simdjson::dom::object object;
    if (properties.get_object().get(object)) throw NotFast{};
    Seen seen(property_keys);
    std::string_view encoding = "utf-8";
    for (auto field : object) {
        element value = field.value;
        switch (seen.index(field.key)) {
            case 0:
                correlation_id = optional_string(value).value_or("");
                break;
            case 1:
                encoding = string_of(value);
                break;
            case 2: {
                simdjson::dom::object info;
                if (value.get_object().get(info)) break;  // ignored, as the DOM way does
                static constexpr std::array<std::string_view, 2> info_keys{"routing_key", "redelivered"};
                Seen seen_info(info_keys);
                for (auto entry : info) {
                    switch (seen_info.index(entry.key)) {
                        case 0: {
                            std::string_view key;
                            if (!entry.value.get_string().get(key) && !key.empty()) message.queue = std::string(key);
                            break;
                        }
                        case 1:
                            message.redelivered = message.redelivered || true_boolean(entry.value);
                            break;
                        default:
                            break;
                    }
                }
                break;
            }
            case 3:
                if (value.type() == element_type::INT64 || value.type() == element_type::UINT64)
                    message.priority = int_of(value);
                break;
            case 4:
                message.delivery_tag = optional_string(value).value_or("");
                break;
            case 5:
                message.reply_to = optional_string(value).value_or("");
                break;
            default:
                break;
        }
    }
    return encoding;
}

nlohmann::json to_nlohmann(element value) {
    switch (value.type()) {
        case element_type::ARRAY: {
            nlohmann::json out = nlohmann::json::array();
            auto& items = out.get_ref<nlohmann::json::array_t&>();
            simdjson::dom::array array;
            if (value.get_array().get(array)) return out;  // not reached: the type says array
            items.reserve(array.size());
            for (element item : array) items.push_back(to_nlohmann(item));
            return out;
        }
        case element_type::OBJECT: {
            nlohmann::json out = nlohmann::json::object();
            auto& fields = out.get_ref<nlohmann::json::object_t&>();
            simdjson::dom::object object;
            if (value.get_object().get(object)) return out;  // not reached: the type says object
            for (auto field : object)
                fields.insert_or_assign(std::string(field.key), to_nlohmann(field.value));  // the last one wins
            return out;
        }
        case element_type::INT64: {
            std::int64_t number = value.get_int64().value_unsafe();
            // nlohmann reads an integer without a sign as unsigned
            if (number >= 0) return nlohmann::json(static_cast<std::uint64_t>(number));
            return nlohmann::json(number);
        }
        case element_type::UINT64:
            return nlohmann::json(value.get_uint64().value_unsafe());
        case element_type::DOUBLE:
            return nlohmann::json(value.get_double().value_unsafe());
        case element_type::STRING:
            return nlohmann::json(std::string(value.get_string().value_unsafe()));
        case element_type::BOOL:
            return nlohmann::json(value.get_bool().value_unsafe());
        case element_type::NULL_VALUE:
            break;
    }
    return nlohmann::json(nullptr);
}

// The envelope's document stays alive while its body is parsed: another parser for values.
simdjson::dom::parser& value_parser() {
    thread_local simdjson::dom::parser instance = [] {
        simdjson::dom::parser p;
        if (p.allocate(4096, fast_max_depth)) throw std::bad_alloc();
        return p;
    }();
    return instance;
}

// Celery's embed when a task has no callbacks, errbacks, chain or chord: each of the four keys once, all null.
// TaskMessage starts with the same value, so it need not be built again.
bool is_default_embed(element value) {
    simdjson::dom::object object;
    if (value.get_object().get(object)) return false;
    static constexpr std::array<std::string_view, 4> keys{"callbacks", "errbacks", "chain", "chord"};
    unsigned seen = 0;
    for (auto field : object) {
        if (!field.value.is_null()) return false;
        auto key = std::find(keys.begin(), keys.end(), field.key);
        if (key == keys.end()) return false;
        seen |= 1u << (key - keys.begin());
    }
    return seen == 0xf && object.size() == 4;
}

// The v2 body, [args, kwargs, embed?]: the same checks as the DOM way, which gives the errors.
void read_body(std::string_view body, std::string_view encoding, TaskMessage& message) {
    std::string decoded = encoding == "base64" ? base64_decode(std::string(body)) : std::string();
    std::string_view text = encoding == "base64" ? std::string_view(decoded) : body;
    element root;
    simdjson::dom::array items;
    if (value_parser().parse(text.data(), text.size()).get(root) || root.get_array().get(items)) throw NotFast{};
    if (items.size() < 2) throw NotFast{};
    auto item = items.begin();
    element args = *item, kwargs = *++item;
    message.args = args.is_null() ? nlohmann::json::array() : to_nlohmann(args);
    message.kwargs = kwargs.is_null() ? nlohmann::json::object() : to_nlohmann(kwargs);
    if (items.size() > 2) {
        element embed = *++item;
        if (embed.is_object() && !is_default_embed(embed)) message.embed = to_nlohmann(embed);
    }
    if (!message.args.is_array() || !message.kwargs.is_object()) throw NotFast{};
}

simdjson::dom::parser& parser() {
    thread_local simdjson::dom::parser instance = [] {
        simdjson::dom::parser p;
        if (p.allocate(4096, fast_max_depth)) throw NotFast{};
        return p;
    }();
    return instance;
}

constexpr std::array<std::string_view, 4> envelope_keys{"body", "content-type", "headers", "properties"};

}  // namespace

std::optional<nlohmann::json> parse_json(std::string_view text) try {
    element root;
    if (value_parser().parse(text.data(), text.size()).get(root)) return std::nullopt;
    return to_nlohmann(root);
} catch (const std::exception&) {  // allocation: nlohmann's way decides
    return std::nullopt;
}

std::optional<TaskMessage> fast_decode(std::string_view text) try {
    element root;
    if (parser().parse(text.data(), text.size()).get(root)) return std::nullopt;
    simdjson::dom::object envelope;
    if (root.get_object().get(envelope)) return std::nullopt;

    std::optional<element> body, headers, properties;
    Seen seen(envelope_keys);
    for (auto field : envelope) {
        switch (seen.index(field.key)) {
            case 0:
                body = field.value;
                break;
            case 1:
                if (string_of(field.value) != "application/json") return std::nullopt;
                break;
            case 2:
                headers = field.value;
                break;
            case 3:
                properties = field.value;
                break;
            default:
                break;
        }
    }
    if (!body || !headers || !body->is_string()) return std::nullopt;

    TaskMessage message;
    message.protocol = 2;
    message.root_id.reset();
    std::optional<std::string> id;  // the header's, else (absent or null) the correlation id, as decode() reads it
    read_headers(*headers, message, id);
    std::string correlation_id;
    std::string_view encoding = "utf-8";
    if (properties) encoding = read_properties(*properties, message, correlation_id);
    message.id = id ? *id : correlation_id;
    if (message.id.empty()) return std::nullopt;
    read_body(string_of(*body), encoding, message);
    return message;
} catch (const NotFast&) {
    return std::nullopt;
} catch (const std::exception&) {  // base64, allocation: the DOM way decides
    return std::nullopt;
}

}  // namespace ccmulti::protocol::detail
