// Redis replies (hiredis redisReply) with typed accessors. A Reply owns a whole reply tree; a ReplyView looks at
// a node of one (an array element) and must not outlive its Reply.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

struct redisReply;

namespace ccmulti::broker::redis {

class ReplyView {
public:
    ReplyView() = default;
    explicit ReplyView(const redisReply* reply) : reply_(reply) {}

    bool is_nil() const;  // also true for an empty (never read) reply
    bool is_error() const;
    bool is_array() const;
    bool is_integer() const;
    bool is_string() const;  // bulk string or status ("OK")

    // Bulk string, status or error text; empty for other types.
    std::string_view text() const;
    std::string string() const { return std::string(text()); }
    std::optional<std::string> optional_string() const;  // nullopt for nil
    long long integer() const;                           // INTEGER, or a numeric string; else 0
    std::size_t size() const;                            // array length; 0 for other types
    ReplyView operator[](std::size_t index) const;
    std::string describe() const;  // for error messages: the error text or the reply type

protected:
    const redisReply* reply_ = nullptr;
};

class Reply : public ReplyView {
public:
    Reply() = default;
    explicit Reply(redisReply* reply);  // takes ownership
    Reply(Reply&& other) noexcept : ReplyView(other.reply_), owned_(std::move(other.owned_)) { other.reply_ = nullptr; }
    Reply& operator=(Reply&& other) noexcept {
        owned_ = std::move(other.owned_);
        reply_ = std::exchange(other.reply_, nullptr);
        return *this;
    }

private:
    struct Free {
        void operator()(redisReply* reply) const noexcept;
    };
    std::unique_ptr<redisReply, Free> owned_;
};

}  // namespace ccmulti::broker::redis
