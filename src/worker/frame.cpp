#include "worker/frame.hpp"

#include <cerrno>
#include <cstdint>

#include "platform/fd.hpp"
#include "protocol/fast_decode.hpp"
#include "util/error.hpp"

namespace ccmulti::worker {

namespace {

std::string encode_length(std::uint32_t length) {
    std::string prefix(4, '\0');
    for (int i = 0; i < 4; ++i) prefix[static_cast<std::size_t>(i)] = static_cast<char>((length >> (8 * i)) & 0xff);
    return prefix;
}

std::uint32_t decode_length(const char* prefix) {
    std::uint32_t length = 0;
    for (int i = 3; i >= 0; --i) length = (length << 8) | static_cast<unsigned char>(prefix[i]);
    return length;
}

nlohmann::json parse_frame(std::string_view text) {
    if (auto value = protocol::detail::parse_json(text)) return std::move(*value);  // the quick way
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
        throw Error(std::string("malformed frame from a pool process: ") + e.what());
    }
}

// Reads exactly `size` bytes; false at end of file before the first byte. Throws on a truncated read.
bool read_exactly(int fd, char* data, std::size_t size) {
    std::size_t done = 0;
    while (done < size) {
        ssize_t n = ::read(fd, data + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw SystemError("read from a pool pipe", errno);
        if (n == 0) {
            if (done == 0) return false;
            throw Error("a pool pipe closed in the middle of a frame");
        }
        done += static_cast<std::size_t>(n);
    }
    return true;
}

// One read(2) (EINTR retried) appended to `buffer`; read(2)'s result, errno set when negative.
constexpr std::size_t read_chunk = 64 * 1024;

ssize_t read_into(int fd, std::string& buffer) {
    char chunk[read_chunk];
    ssize_t n;
    while ((n = ::read(fd, chunk, sizeof chunk)) < 0 && errno == EINTR) {
    }
    if (n > 0) buffer.append(chunk, static_cast<std::size_t>(n));
    return n;
}

}  // namespace

std::string frame_text(const nlohmann::json& message) {
    return message.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool write_frame(int fd, const nlohmann::json& message) {
    return write_frame_text(fd, frame_text(message));
}

bool write_frame_text(int fd, const std::string& text) {
    if (text.size() > max_frame_size) return false;
    std::string frame;
    append_frame(frame, text);
    return write_all(fd, frame.data(), frame.size());
}

void append_frame(std::string& out, std::string_view text) {
    out += encode_length(static_cast<std::uint32_t>(text.size()));
    out += text;
}

std::optional<nlohmann::json> read_frame(int fd) {
    char prefix[4];
    if (!read_exactly(fd, prefix, sizeof prefix)) return std::nullopt;
    std::uint32_t length = decode_length(prefix);
    if (length > max_frame_size) throw Error("a pool frame of " + std::to_string(length) + " bytes is too large");
    std::string text(length, '\0');
    if (length > 0 && !read_exactly(fd, text.data(), length)) throw Error("a pool pipe closed after a frame header");
    return parse_frame(text);
}

FrameReader::Fill FrameReader::fill(int fd) {
    for (;;) {
        ssize_t n = read_into(fd, buffer_);
        // A short read took all the pipe had: stop rather than pay a read(2) for EAGAIN. Anything written since
        // keeps the fd readable, and the (level-triggered) loop calls again.
        if (n > 0 && static_cast<std::size_t>(n) < read_chunk) return Fill::open;
        if (n > 0) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Fill::open;
        return Fill::closed;
    }
}

FrameReader::Fill FrameReader::read_some(int fd) {
    ssize_t n = read_into(fd, buffer_);
    if (n > 0) return Fill::open;
    if (n < 0) throw SystemError("read from a pool pipe", errno);
    if (!buffer_.empty()) throw Error("a pool pipe closed in the middle of a frame");
    return Fill::closed;
}

std::optional<nlohmann::json> FrameReader::next() {
    if (buffer_.size() < 4) return std::nullopt;
    std::uint32_t length = decode_length(buffer_.data());
    if (length > max_frame_size) throw Error("a pool frame of " + std::to_string(length) + " bytes is too large");
    if (buffer_.size() < 4 + static_cast<std::size_t>(length)) return std::nullopt;
    auto message = parse_frame(std::string_view(buffer_).substr(4, length));
    buffer_.erase(0, 4 + static_cast<std::size_t>(length));
    return message;
}

}  // namespace ccmulti::worker
