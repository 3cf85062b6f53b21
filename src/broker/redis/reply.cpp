#include "broker/redis/reply.hpp"

#include <hiredis/hiredis.h>

#include <charconv>

namespace ccmulti::broker::redis {

bool ReplyView::is_nil() const {
    return !reply_ || reply_->type == REDIS_REPLY_NIL;
}
bool ReplyView::is_error() const {
    return reply_ && reply_->type == REDIS_REPLY_ERROR;
}
bool ReplyView::is_array() const {
    return reply_ && reply_->type == REDIS_REPLY_ARRAY;
}
bool ReplyView::is_integer() const {
    return reply_ && reply_->type == REDIS_REPLY_INTEGER;
}
bool ReplyView::is_string() const {
    return reply_ && (reply_->type == REDIS_REPLY_STRING || reply_->type == REDIS_REPLY_STATUS);
}

std::string_view ReplyView::text() const {
    if (!reply_ || !reply_->str) return {};
    if (reply_->type != REDIS_REPLY_STRING && reply_->type != REDIS_REPLY_STATUS && reply_->type != REDIS_REPLY_ERROR)
        return {};
    return {reply_->str, reply_->len};
}

std::optional<std::string> ReplyView::optional_string() const {
    if (!is_string()) return std::nullopt;
    return string();
}

long long ReplyView::integer() const {
    if (is_integer()) return reply_->integer;
    long long value = 0;
    auto text_value = text();
    std::from_chars(text_value.data(), text_value.data() + text_value.size(), value);
    return value;
}

std::size_t ReplyView::size() const {
    return is_array() ? reply_->elements : 0;
}

ReplyView ReplyView::operator[](std::size_t index) const {
    if (!is_array() || index >= reply_->elements) return ReplyView{};
    return ReplyView{reply_->element[index]};
}

std::string ReplyView::describe() const {
    if (!reply_) return "no reply";
    switch (reply_->type) {
        case REDIS_REPLY_ERROR:
            return string();
        case REDIS_REPLY_NIL:
            return "nil";
        case REDIS_REPLY_INTEGER:
            return "integer " + std::to_string(reply_->integer);
        case REDIS_REPLY_ARRAY:
            return "array of " + std::to_string(reply_->elements);
        default:
            return "\"" + string() + "\"";
    }
}

Reply::Reply(redisReply* reply) : ReplyView(reply), owned_(reply) {}

void Reply::Free::operator()(redisReply* reply) const noexcept {
    freeReplyObject(reply);
}

}  // namespace ccmulti::broker::redis
