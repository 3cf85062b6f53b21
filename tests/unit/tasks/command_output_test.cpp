#include "tasks/command_output.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include <ccmulti/task.hpp>

using namespace ccmulti;
using namespace ccmulti::tasks;
using nlohmann::json;

namespace {

CommandRun exited(int code, std::string out, std::string err = "") {
    CommandRun run;
    run.wait_status = code << 8;
    run.out = std::move(out);
    run.err = std::move(err);
    return run;
}

// The failure's "Type: message", or "" when it succeeded.
std::string failure(const CommandRun& run) {
    try {
        command_result(run, {"prog", "arg"});
    } catch (const TaskError& e) {
        return e.type() + ": " + e.message();
    }
    return "";
}

}  // namespace

TEST(CommandOutput, StdoutIsTheResult) {
    EXPECT_EQ(command_result(exited(0, "  {\"a\": [1, 2]}\n"), {"prog"}), json({{"a", {1, 2}}}));
    EXPECT_EQ(command_result(exited(0, "\n\n"), {"prog"}), nullptr);
    EXPECT_EQ(failure(exited(0, "hello")), "CommandError: command succeeded but its stdout is not JSON: hello");
    EXPECT_EQ(
        failure(exited(0, "{\"a\": \"\xff\"}")).rfind("CommandError: command succeeded but its stdout is not JSON", 0),
        0U);
}

TEST(CommandOutput, DeepNestingIsAFailureNotAStackOverflow) {
    // Encoding recurses once per level: 100000 levels printed by a task would crash the pool process.
    std::string deep(100000, '[');
    deep += std::string(100000, ']');
    EXPECT_EQ(failure(exited(0, deep)),
              "CommandError: command succeeded but its stdout nests arrays or objects deeper than 256 levels");
    std::string ok = std::string(max_result_depth, '[') + std::string(max_result_depth, ']');
    EXPECT_NO_THROW(command_result(exited(0, ok), {"prog"}).dump());
    // Brackets inside strings do not count.
    EXPECT_EQ(command_result(exited(0, "\"" + std::string(1000, '[') + "\""), {"prog"}), std::string(1000, '['));
}

TEST(CommandOutput, FailuresSayWhatHappened) {
    EXPECT_EQ(failure(exited(3, "", "oops\n")), "CommandError: prog arg: exit status 3");
    EXPECT_EQ(failure(exited(1, "", "Traceback…\nValueError: boom\n")), "ValueError: boom");
    CommandRun killed;
    killed.wait_status = SIGKILL;  // as waitpid reports a death by signal
    EXPECT_EQ(failure(killed), "CommandError: prog arg: killed by SIGKILL");
    CommandRun soft = killed;
    soft.wait_status = SIGUSR1;
    soft.soft_signalled = true;
    EXPECT_EQ(failure(soft), "SoftTimeLimitExceeded: soft time limit exceeded");
    CommandRun hard;
    hard.hard_killed = true;
    EXPECT_EQ(failure(hard), "TimeLimitExceeded: hard time limit exceeded");
    CommandRun missing;
    missing.exec_errno = ENOENT;
    EXPECT_EQ(failure(missing), "CommandError: cannot run 'prog': No such file or directory");
}

// Inputs the fuzzer (scripts/fuzz) found; the format is tests/fuzz/command_output_fuzz.cpp's.
TEST(CommandOutput, FuzzRegressions) {
    int seen = 0;
    for (const auto& entry : std::filesystem::directory_iterator(CCMULTI_SOURCE_DIR "/tests/fuzz/regressions")) {
        if (entry.path().extension() != ".cmdout") continue;
        std::ifstream in(entry.path(), std::ios::binary);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (text.empty()) continue;
        CommandRun run;
        const int code = static_cast<unsigned char>(text[0]) & 0x7f;
        const bool signalled = (static_cast<unsigned char>(text[0]) & 0x80) != 0 && code > 0 && code < 64;
        run.wait_status = signalled ? code : code << 8;
        run.soft_signalled = signalled;
        std::string rest = text.substr(1);
        auto nul = rest.find('\0');
        run.out = rest.substr(0, nul);
        if (nul != std::string::npos) run.err = rest.substr(nul + 1);
        try {
            command_result(run, {"fuzz"}).dump(-1, ' ', false, json::error_handler_t::replace);
        } catch (const TaskError&) {
        }
        ++seen;
    }
    EXPECT_GT(seen, 0);
}
