// Messages between a node and its pool children: JSON in length-prefixed frames (4 bytes, little endian, then
// the JSON text). A pipe is a byte stream; the prefix restores message boundaries without scanning for
// delimiters, and lets the reader refuse an absurd length before allocating it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace ccmulti::worker {

inline constexpr std::size_t max_frame_size = 64 * 1024 * 1024;

// Blocking write of one frame (retries EINTR and short writes). False when the other end is gone (EPIPE: the
// caller blocks or ignores SIGPIPE) or the message is larger than max_frame_size.
bool write_frame(int fd, const nlohmann::json& message);
// The same in two steps, for a caller that must tell "too large" (frame_text(m).size() > max_frame_size)
// from "the other end is gone".
std::string frame_text(const nlohmann::json& message);
bool write_frame_text(int fd, const std::string& text);
// Appends `text` as a frame to `out`, for a caller that writes several frames with one write (at most
// max_frame_size: check first).
void append_frame(std::string& out, std::string_view text);

// Blocking read of one frame; nullopt at end of file. Throws Error for a truncated or malformed frame.
std::optional<nlohmann::json> read_frame(int fd);

// The non-blocking side: feed it what a readable fd has, take the complete frames out.
class FrameReader {
public:
    enum class Fill { open, closed };
    // Reads what is available now from a non-blocking fd (until a short read: call again when the fd is still
    // readable). `closed` at end of file or on a read error.
    Fill fill(int fd);
    // One read(2), which waits on a blocking fd: for a pool process waiting for its next request. `closed` at
    // end of file; a frame cut short by it is an Error.
    Fill read_some(int fd);
    // The next complete frame, if one has arrived. Throws Error for a malformed one.
    std::optional<nlohmann::json> next();

private:
    std::string buffer_;
};

}  // namespace ccmulti::worker
