#include "platform/spawn.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "platform/fd.hpp"
#include "platform/proc.hpp"
#include "util/error.hpp"

namespace ccmulti {

namespace {

int reap(pid_t pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

// Reaps whatever Boost.Process left unreaped after a failed exec (it never waits: we are the reaper).
void reap_all() {
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
}

}  // namespace

TEST(Spawn, RunsInItsOwnGroupWithTheGivenEnvironmentAndOutput) {
    Pipe out = make_pipe();
    SpawnOptions options;
    options.program = "sh";
    options.args = {"-c", "echo \"$GREETING $(cut -d' ' -f5 /proc/self/stat)\""};
    options.env = {"GREETING=hello", "PATH=/usr/bin:/bin"};
    options.stdout_fd = out.write.get();
    pid_t pid = spawn(options);
    out.write.reset();
    char buffer[128] = {};
    ssize_t n = read(out.read.get(), buffer, sizeof buffer - 1);
    ASSERT_GT(n, 0);
    // sh runs `cut` in a child of the same group; field 5 is the pgrp, which is the spawned pid.
    EXPECT_EQ(std::string(buffer), "hello " + std::to_string(pid) + "\n");
    int status = reap(pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(Spawn, MissingProgramIsAnErrorNotACrash) {
    SpawnOptions options;
    options.program = "ccmulti-no-such-program";
    try {
        spawn(options);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("not found on PATH"), std::string::npos) << e.what();
    }
}

TEST(Spawn, ExecFailureIsReported) {
    SpawnOptions options;
    options.program = "/etc/passwd";  // exists, not executable
    EXPECT_THROW(spawn(options), Error);
    options.program = "/bin/true";
    options.cwd = "/nonexistent-dir";
    try {
        spawn(options);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent-dir"), std::string::npos) << e.what();
    }
    reap_all();
}

TEST(Spawn, SignalMaskIsResetInTheChild) {
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, nullptr);
    SpawnOptions options;
    options.program = "sleep";
    options.args = {"30"};
    pid_t pid = spawn(options);
    ASSERT_EQ(kill(pid, SIGTERM), 0);
    int status = reap(pid);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    sigprocmask(SIG_UNBLOCK, &block, nullptr);
}

}  // namespace ccmulti
