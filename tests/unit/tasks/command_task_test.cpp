#include "tasks/command_task.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <thread>

#include "platform/fd.hpp"
#include "tasks/execute.hpp"

using namespace ccmulti;
using namespace ccmulti::tasks;
using nlohmann::json;

namespace {

TaskCall command_call(const std::string& name, json args = json::array()) {
    TaskCall c;
    c.id = "the-id";
    c.name = name;
    c.args = std::move(args);
    c.kwargs = {{"k", 1}};
    c.retries = 2;
    return c;
}

Registry with(const std::string& name, std::vector<std::string> argv) {
    Registry registry;
    registry.add(command_task(name, std::move(argv)));
    return registry;
}

bool process_exists(pid_t pid) {
    return ::kill(pid, 0) == 0 || errno != ESRCH;
}

}  // namespace

TEST(CommandTask, ParsesExceptionLines) {
    using Line = std::optional<std::pair<std::string, std::string>>;
    EXPECT_EQ(parse_exception_line("Traceback...\n  File x\nValueError: boom\n"), Line({"ValueError", "boom"}));
    EXPECT_EQ(parse_exception_line("myapp.errors.Oops: a: b"), Line({"myapp.errors.Oops", "a: b"}));
    EXPECT_EQ(parse_exception_line("KeyboardInterrupt\n"), Line({"KeyboardInterrupt", ""}));
    EXPECT_FALSE(parse_exception_line("Done"));
    EXPECT_FALSE(parse_exception_line("see the log at /var/log/x: no such file"));
    EXPECT_FALSE(parse_exception_line("error 42: x y"));
    EXPECT_FALSE(parse_exception_line(""));
}

TEST(CommandTask, GetsTheCallOnStdinAndReturnsStdoutJson) {
    // `cat` echoes the call object back: the result is exactly what the command was given.
    auto outcome = execute(with("t.cat", {"cat"}), command_call("t.cat", {1, "two"}));
    ASSERT_TRUE(outcome.ok) << outcome.traceback;
    EXPECT_EQ(
        outcome.result,
        json({{"id", "the-id"}, {"task", "t.cat"}, {"args", {1, "two"}}, {"kwargs", {{"k", 1}}}, {"retries", 2}}));
    auto empty = execute(with("t.true", {"true"}), command_call("t.true"));
    ASSERT_TRUE(empty.ok);
    EXPECT_EQ(empty.result, nullptr);
}

TEST(CommandTask, PythonExceptionBecomesTheFailure) {
    auto outcome =
        execute(with("t.py", {"python3", "-c", "import sys, json; json.load(sys.stdin); raise ValueError('boom')"}),
                command_call("t.py"));
    ASSERT_FALSE(outcome.ok);
    EXPECT_EQ(outcome.exception.describe(), "ValueError: boom");
    EXPECT_EQ(outcome.exception.module, "builtins");
    EXPECT_NE(outcome.traceback.find("Traceback (most recent call last)"), std::string::npos);
}

TEST(CommandTask, OtherFailuresAreCommandErrors) {
    auto status = execute(with("t.exit", {"sh", "-c", "echo oops >&2; exit 3"}), command_call("t.exit"));
    EXPECT_EQ(status.exception.type, "CommandError");
    EXPECT_NE(status.exception.message.find("exit status 3"), std::string::npos);
    EXPECT_EQ(status.traceback, "oops\n");

    auto missing = execute(with("t.missing", {"/nonexistent/program"}), command_call("t.missing"));
    EXPECT_EQ(missing.exception.type, "CommandError");
    EXPECT_NE(missing.exception.message.find("No such file"), std::string::npos);

    auto not_json = execute(with("t.echo", {"echo", "hello world"}), command_call("t.echo"));
    EXPECT_EQ(not_json.exception.type, "CommandError");
    EXPECT_NE(not_json.exception.message.find("not JSON"), std::string::npos);
}

TEST(CommandTask, SeesOnlyStdinStdoutAndStderr) {
    // A pool process holds its request and reply pipes as fds 3 and 4, inheritable after dup2; a command task
    // must not get them (it could read other tasks' requests or forge replies). Here: any fd without CLOEXEC.
    auto leaked = make_pipe();
    UniqueFd inheritable_read(::fcntl(leaked.read.get(), F_DUPFD, 100));  // without CLOEXEC, as after dup2
    UniqueFd inheritable_write(::fcntl(leaked.write.get(), F_DUPFD, 100));
    ASSERT_TRUE(inheritable_read && inheritable_write);
    const std::string list_fds =
        "import json, os\n"
        "def is_open(fd):\n"
        "    try:\n"
        "        os.fstat(fd)\n"
        "        return True\n"
        "    except OSError:\n"
        "        return False\n"
        "print(json.dumps([fd for fd in range(1024) if is_open(fd)]))\n";
    auto outcome = execute(with("t.fds", {"python3", "-c", list_fds}), command_call("t.fds"));
    ASSERT_TRUE(outcome.ok) << outcome.traceback;
    EXPECT_EQ(outcome.result, json({0, 1, 2}));
}

TEST(CommandTask, HardLimitKillsTheWholeGroup) {
    // The command starts a grandchild that would outlive it; the hard limit must take both.
    auto pidfile = std::filesystem::temp_directory_path() / ("ccmulti-cmd-" + std::to_string(::getpid()));
    auto registry = with("t.hang", {"sh", "-c", "sleep 60 & echo $! > " + pidfile.string() + "; wait"});
    auto c = command_call("t.hang");
    c.hard_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
    auto start = std::chrono::steady_clock::now();
    auto outcome = execute(registry, c);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
    EXPECT_EQ(outcome.exception.type, "TimeLimitExceeded");
    std::ifstream in(pidfile);
    pid_t grandchild = 0;
    in >> grandchild;
    std::filesystem::remove(pidfile);
    ASSERT_GT(grandchild, 0);
    // Killed by SIGKILL; reaped by init shortly after. Poll with a deadline.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (process_exists(grandchild) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_FALSE(process_exists(grandchild));
}

TEST(CommandTask, SoftLimitSignalsTheCommand) {
    auto registry = with("t.slow", {"sleep", "60"});
    auto c = command_call("t.slow");
    c.soft_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
    auto outcome = execute(registry, c);
    EXPECT_EQ(outcome.exception.type, "SoftTimeLimitExceeded");
}
