#include "worker/frame.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>

#include "platform/fd.hpp"
#include "util/error.hpp"

namespace ccmulti::worker {

TEST(Frame, RoundTripThroughAPipe) {
    Pipe pipe = make_pipe();
    nlohmann::json message = {{"id", "abc"}, {"args", {1, "two", nullptr}}, {"text", std::string(1000, 'x')}};
    ASSERT_TRUE(write_frame(pipe.write.get(), message));
    ASSERT_TRUE(write_frame(pipe.write.get(), nlohmann::json::array()));
    pipe.write.reset();
    EXPECT_EQ(read_frame(pipe.read.get()), message);
    EXPECT_EQ(read_frame(pipe.read.get()), nlohmann::json::array());
    EXPECT_EQ(read_frame(pipe.read.get()), std::nullopt);  // end of file between frames
}

TEST(Frame, ReaderAssemblesFramesFromPieces) {
    Pipe pipe = make_pipe(O_NONBLOCK);
    FrameReader reader;
    EXPECT_EQ(reader.fill(pipe.read.get()), FrameReader::Fill::open);
    EXPECT_EQ(reader.next(), std::nullopt);

    // Byte by byte: nothing comes out before the frame is complete.
    std::string frame = std::string("\x07\x00\x00\x00", 4) + "{\"a\":1}";
    for (std::size_t i = 0; i + 1 < frame.size(); ++i) {
        ASSERT_TRUE(write_all(pipe.write.get(), &frame[i], 1));
        reader.fill(pipe.read.get());
        EXPECT_EQ(reader.next(), std::nullopt);
    }
    ASSERT_TRUE(write_all(pipe.write.get(), &frame.back(), 1));
    reader.fill(pipe.read.get());
    EXPECT_EQ(reader.next(), (nlohmann::json{{"a", 1}}));

    ASSERT_TRUE(write_frame(pipe.write.get(), 1));
    ASSERT_TRUE(write_frame(pipe.write.get(), 2));
    pipe.write.reset();
    EXPECT_EQ(reader.fill(pipe.read.get()), FrameReader::Fill::closed);
    EXPECT_EQ(reader.next(), 1);
    EXPECT_EQ(reader.next(), 2);
    EXPECT_EQ(reader.next(), std::nullopt);
}

TEST(Frame, MalformedFramesAreErrors) {
    Pipe pipe = make_pipe(O_NONBLOCK);
    FrameReader reader;
    std::string huge("\xff\xff\xff\x7f", 4);
    ASSERT_TRUE(write_all(pipe.write.get(), huge.data(), huge.size()));
    reader.fill(pipe.read.get());
    EXPECT_THROW(reader.next(), Error);

    Pipe other = make_pipe();
    std::string bad = std::string("\x03\x00\x00\x00", 4) + "{x}";
    ASSERT_TRUE(write_all(other.write.get(), bad.data(), bad.size()));
    EXPECT_THROW(read_frame(other.read.get()), Error);

    Pipe truncated = make_pipe();
    std::string half = std::string("\x09\x00\x00\x00", 4) + "[1,";
    ASSERT_TRUE(write_all(truncated.write.get(), half.data(), half.size()));
    truncated.write.reset();
    EXPECT_THROW(read_frame(truncated.read.get()), Error);
}

}  // namespace ccmulti::worker
