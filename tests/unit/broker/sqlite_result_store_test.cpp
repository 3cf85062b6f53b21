#include "broker/sqlite/sqlite_result_store.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "test_db.hpp"

using namespace ccmulti;
using namespace ccmulti::broker;
using namespace ccmulti::broker::testing;
using namespace ccmulti::protocol;

TEST(SqliteResultStore, StoresAndGets) {
    TempDir dir;
    auto conn = open_in(dir);
    EXPECT_FALSE(conn.results->get("nope"));
    EXPECT_TRUE(conn.results->store(started_result("a", 1, "w1@h")));
    EXPECT_EQ(conn.results->get("a")->status, TaskState::started);
    EXPECT_TRUE(conn.results->store(success_result("a", 4)));
    auto got = conn.results->get("a");
    EXPECT_EQ(got->status, TaskState::success);
    EXPECT_EQ(got->result, 4);
}

TEST(SqliteResultStore, NeverReplacesAFinalState) {
    TempDir dir;
    auto conn = open_in(dir);
    EXPECT_TRUE(conn.results->store(success_result("a", "first")));
    EXPECT_FALSE(conn.results->store(started_result("a", 1, "w1@h")));
    EXPECT_FALSE(conn.results->store(success_result("a", "second")));
    EXPECT_EQ(conn.results->get("a")->result, "first");
    // No final state is replaced (a task run twice keeps the outcome stored first); a RETRY is (its next run).
    EXPECT_TRUE(conn.results->store(failure_result("b", ExceptionInfo::of("ValueError", "x"), "tb")));
    EXPECT_FALSE(conn.results->store(success_result("b", 1)));
    EXPECT_EQ(conn.results->get("b")->status, TaskState::failure);
    EXPECT_TRUE(conn.results->store(retry_result("c", ExceptionInfo::of("Retry", "in 1s"), "tb")));
    EXPECT_TRUE(conn.results->store(success_result("c", 1)));
    EXPECT_EQ(conn.results->get("c")->status, TaskState::success);
}

TEST(SqliteResultStore, StoreManyIsStoreInOrderInOneTransaction) {
    TempDir dir;
    auto conn = open_in(dir);
    EXPECT_TRUE(conn.results->store(success_result("done", "first")));
    conn.results->store_many({started_result("a", 1, "w1@h"), success_result("a", 4), success_result("done", "again"),
                              success_result("b", 5), started_result("b", 1, "w1@h")});
    EXPECT_EQ(conn.results->get("a")->result, 4);        // a later state of the same batch wins...
    EXPECT_EQ(conn.results->get("b")->status, TaskState::success);  // ...unless the earlier one is final
    EXPECT_EQ(conn.results->get("done")->result, "first");
    conn.results->store_many({});
}

TEST(SqliteResultStore, ResultsExpire) {
    TempDir dir;
    auto conn = open_in(dir, std::chrono::seconds(1));
    conn.results->store(success_result("a", 1));
    EXPECT_TRUE(conn.results->get("a"));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (conn.results->get("a") && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_FALSE(conn.results->get("a"));
}

TEST(SqliteResultStore, WaitIsWokenByAnotherProcess) {
    TempDir dir;
    auto conn = open_in(dir);
    EXPECT_FALSE(conn.results->wait("a", std::chrono::milliseconds(50)));
    conn.results->store(started_result("a", 1, "w1@h"));
    EXPECT_EQ(conn.results->wait("a", std::chrono::milliseconds(50))->status, TaskState::started);

    // The child stores STARTED then SUCCESS while we wait; a 60 s timeout proves we were woken, not timed out.
    int go[2];
    ASSERT_EQ(::pipe(go), 0);
    pid_t child = fork_child([&] {
        char byte;
        (void)!::read(go[0], &byte, 1);
        auto child_conn = open_in(dir);
        child_conn.results->store(started_result("b", 2, "w1@h"));
        child_conn.results->store(success_result("b", "done"));
    });
    (void)!::write(go[1], "x", 1);
    auto start = std::chrono::steady_clock::now();
    auto got = conn.results->wait("b", std::chrono::seconds(60));
    EXPECT_EQ(wait_child(child), 0);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->status, TaskState::success);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
    ::close(go[0]);
    ::close(go[1]);
}

TEST(SqliteResultStore, RecentListsTheLatestStoredFirst) {
    TempDir dir;
    auto conn = open_in(dir);
    EXPECT_TRUE(conn.results->recent(10).empty());
    conn.results->store(success_result("a", 1));
    conn.results->store(failure_result("b", ExceptionInfo::of("ValueError", "x"), "tb"));
    conn.results->store(started_result("c", 1, "w1@h"));
    conn.results->store(success_result("c", 3));  // stored again: now the latest
    std::vector<std::string> ids;
    for (const auto& meta : conn.results->recent(10)) ids.push_back(meta.task_id);
    EXPECT_EQ(ids, (std::vector<std::string>{"c", "b", "a"}));
    ASSERT_EQ(conn.results->recent(2).size(), 2u);
    EXPECT_EQ(conn.results->recent(2)[1].status, TaskState::failure);
}
