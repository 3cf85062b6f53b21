#include "protocol/iso_time.hpp"

#include <gtest/gtest.h>

using namespace ccmulti::protocol;

TEST(IsoTime, ParsesCeleryFormsAndOffsets) {
    auto base = parse_iso8601("2026-11-24T16:48:22.318198+00:00");
    ASSERT_TRUE(base);
    EXPECT_EQ(format_iso8601(*base), "2026-11-24T16:48:22.318198+00:00");
    EXPECT_EQ(parse_iso8601("2026-11-24T16:48:22.318198Z"), base);
    EXPECT_EQ(parse_iso8601("2026-11-24T16:48:22.318198"), base);  // naive = UTC
    EXPECT_EQ(parse_iso8601("2026-11-24T18:48:22.318198+02:00"), base);
    EXPECT_EQ(parse_iso8601("2026-11-24T15:48:22.318198-0100"), base);
    EXPECT_EQ(parse_iso8601("2026-11-24 16:48:22.318198"), base);
    EXPECT_EQ(format_iso8601(*parse_iso8601("1970-01-01T00:00:00")), "1970-01-01T00:00:00.000000+00:00");
    EXPECT_EQ(to_unix(*parse_iso8601("1970-01-02T00:00:01.5Z")), 86401.5);
}

TEST(IsoTime, RejectsNonsense) {
    for (const char* text : {"", "2026", "2026-13-01T00:00", "2026-11-24", "2026-11-24T16:48:22+",
                             "2026-11-24T16:48:22.", "2026-11-24T16:48:22 junk", "tomorrow"})
        EXPECT_FALSE(parse_iso8601(text)) << text;
}

TEST(IsoTime, UnixRoundTrip) {
    auto t = now();
    EXPECT_EQ(from_unix(to_unix(t)), t);
}
