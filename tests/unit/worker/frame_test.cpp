#include "worker/frame.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>

#include "platform/fd.hpp"
#include "util/error.hpp"
#include "worker/pool_child.hpp"

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
    EXPECT_EQ(reader.fill(pipe.read.get()), FrameReader::Fill::open);  // a short read: all there was
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

TEST(Frame, RequestTextIsTheRequestObjectDumped) {
    TaskCall call;
    call.id = "id-\"1\"";
    call.name = "tasks.add";
    call.args = nlohmann::json::parse(R"([1, "two", {"b": 2.5, "a": null}, "\u00e9\u0001"])");
    call.kwargs = nlohmann::json::parse(R"({"z": [], "y": {}})");
    call.retries = 2;
    for (auto [soft, hard, rss] :
         {std::tuple<std::optional<double>, std::optional<double>, bool>{std::nullopt, std::nullopt, false},
          {1.5, 3.0, true},
          {std::nullopt, 0.25, false}})
        EXPECT_EQ(request_text(call.id, call.name, call.args, call.kwargs, call.retries, soft, hard, rss),
                  frame_text(request_json(call, soft, hard, rss)));
    call.name = "bad\xff";  // replaced, as frame_text does
    EXPECT_EQ(request_text(call.id, call.name, call.args, call.kwargs, call.retries, {}, {}),
              frame_text(request_json(call, {}, {})));
}

TEST(Frame, ReplyTextIsTheReplyObjectDumped) {
    tasks::TaskOutcome ok;
    ok.ok = true;
    ok.result = nlohmann::json::parse(R"({"b": [1, 2.5], "a": "\u00e9"})");
    tasks::TaskOutcome failed;
    failed.exception = protocol::ExceptionInfo::of("ValueError", "bad \"x\"\n");
    failed.traceback = "Traceback\n  line 1";
    for (const auto& outcome : {ok, failed}) {
        EXPECT_EQ(reply_text("id-1", outcome), frame_text(reply_json("id-1", outcome)));
        nlohmann::json with_rss = reply_json("id-1", outcome);
        with_rss["rss_kib"] = 12345;
        EXPECT_EQ(reply_text("id-1", outcome, 12345), frame_text(with_rss));
    }
}

}  // namespace ccmulti::worker
