#include "supervisor/node_lifecycle.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace ccmulti::supervisor {

namespace {

constexpr NodeState all_states[] = {NodeState::starting, NodeState::ready,  NodeState::stopping, NodeState::stopped,
                                    NodeState::failed,   NodeState::exited, NodeState::backoff,  NodeState::replacing};
constexpr NodeEvent all_events[] = {
    NodeEvent::start,           NodeEvent::spawn_failed,    NodeEvent::ready,  NodeEvent::stop,
    NodeEvent::restart,         NodeEvent::restart_due,     NodeEvent::exited, NodeEvent::replace,
    NodeEvent::successor_ready, NodeEvent::successor_failed};

const NodeFacts first_start{.reported = false, .restarting = false, .clean_exit = false};
const NodeFacts ran_before{.reported = true, .restarting = false, .clean_exit = false};
const NodeFacts in_restart{.reported = true, .restarting = true, .clean_exit = false};
const NodeFacts in_reload{.reported = true, .restarting = true, .clean_exit = false, .can_overlap = true};

NodeStep must(NodeState state, NodeEvent event, const NodeFacts& facts) {
    auto step = transition(state, event, facts);
    EXPECT_TRUE(step) << state_name(state) << " × " << event_name(event);
    return step.value_or(NodeStep{state});
}

}  // namespace

TEST(NodeLifecycle, AFirstStartThatDiesIsReportedNotRetried) {
    auto step = must(NodeState::starting, NodeEvent::exited, first_start);
    EXPECT_EQ(step.next, NodeState::failed);
    EXPECT_TRUE(step.has(act_report_failed));
    EXPECT_TRUE(step.has(act_release));
    EXPECT_FALSE(step.has(act_schedule_restart));
    EXPECT_EQ(must(NodeState::starting, NodeEvent::spawn_failed, first_start).next, NodeState::failed);
}

TEST(NodeLifecycle, ACrashAfterReadyIsRetriedForEverAndKeepsTheName) {
    for (NodeState state : {NodeState::ready, NodeState::starting}) {
        auto step = must(state, NodeEvent::exited, ran_before);
        EXPECT_EQ(step.next, NodeState::backoff) << state_name(state);
        EXPECT_TRUE(step.has(act_schedule_restart));
        EXPECT_FALSE(step.has(act_release)) << "a node in backoff keeps its pid-file lock";
    }
    EXPECT_EQ(must(NodeState::starting, NodeEvent::spawn_failed, ran_before).next, NodeState::backoff);
    auto again = must(NodeState::backoff, NodeEvent::restart_due, ran_before);
    EXPECT_EQ(again.next, NodeState::starting);
    EXPECT_TRUE(again.has(act_spawn) && again.has(act_count_restart));
}

TEST(NodeLifecycle, ACleanExitNobodyAskedForIsNotACrash) {
    auto step = must(NodeState::ready, NodeEvent::exited, {.reported = true, .restarting = false, .clean_exit = true});
    EXPECT_EQ(step.next, NodeState::exited);
    EXPECT_TRUE(step.has(act_release));
    EXPECT_FALSE(step.has(act_schedule_restart));
}

TEST(NodeLifecycle, StopAndItsExit) {
    auto stop = must(NodeState::ready, NodeEvent::stop, ran_before);
    EXPECT_EQ(stop.next, NodeState::stopping);
    EXPECT_TRUE(stop.has(act_begin_stop));
    EXPECT_EQ(must(NodeState::stopping, NodeEvent::stop, ran_before).next, NodeState::stopping)
        << "a second request merges its plan";
    auto gone = must(NodeState::stopping, NodeEvent::exited, ran_before);
    EXPECT_EQ(gone.next, NodeState::stopped);
    EXPECT_FALSE(gone.has(act_report_failed));
    EXPECT_TRUE(must(NodeState::stopping, NodeEvent::exited, first_start).has(act_report_failed))
        << "stopped before it was ready: the start report says so";
    auto cancelled = must(NodeState::backoff, NodeEvent::stop, ran_before);
    EXPECT_EQ(cancelled.next, NodeState::stopped);
    EXPECT_TRUE(cancelled.has(act_cancel_restart) && cancelled.has(act_release));
}

TEST(NodeLifecycle, ARestartStopsWarmThenStartsAgainKeepingTheLock) {
    EXPECT_EQ(must(NodeState::ready, NodeEvent::restart, ran_before).next, NodeState::stopping);
    auto again = must(NodeState::stopping, NodeEvent::exited, in_restart);
    EXPECT_EQ(again.next, NodeState::starting);
    EXPECT_TRUE(again.has(act_spawn));
    EXPECT_FALSE(again.has(act_release));
    EXPECT_FALSE(again.has(act_job_failed));
    auto now = must(NodeState::backoff, NodeEvent::restart, ran_before);
    EXPECT_EQ(now.next, NodeState::starting);
    EXPECT_TRUE(now.has(act_cancel_restart) && now.has(act_spawn));
}

TEST(NodeLifecycle, ARestartThatDoesNotComeBackFailsItsJob) {
    EXPECT_TRUE(must(NodeState::starting, NodeEvent::exited, in_restart).has(act_job_failed));
    EXPECT_TRUE(must(NodeState::starting, NodeEvent::spawn_failed, in_restart).has(act_job_failed));
    EXPECT_TRUE(must(NodeState::stopping, NodeEvent::stop, in_restart).has(act_job_failed))
        << "a stop request ends the restart";
    EXPECT_FALSE(must(NodeState::starting, NodeEvent::ready, in_restart).has(act_job_failed));
}

TEST(NodeLifecycle, EventsThatMeanNothingChangeNothing) {
    EXPECT_FALSE(transition(NodeState::stopping, NodeEvent::ready, ran_before)) << "a late ready line";
    EXPECT_FALSE(transition(NodeState::ready, NodeEvent::ready, ran_before));
    EXPECT_FALSE(transition(NodeState::stopped, NodeEvent::stop, ran_before));
    EXPECT_FALSE(transition(NodeState::ready, NodeEvent::start, ran_before)) << "add refuses a running node";
    EXPECT_FALSE(transition(NodeState::ready, NodeEvent::restart_due, ran_before)) << "a stale backoff timer";
}

TEST(NodeLifecycle, AReplaceStartsTheSuccessorBesideTheServingNode) {
    auto step = must(NodeState::ready, NodeEvent::replace, in_reload);
    EXPECT_EQ(step.next, NodeState::replacing);
    EXPECT_TRUE(step.has(act_spawn_successor));
    EXPECT_FALSE(step.has(act_begin_stop)) << "nothing stops before the successor is ready";
    EXPECT_TRUE(alive(NodeState::replacing));
    auto ready = must(NodeState::replacing, NodeEvent::successor_ready, in_reload);
    EXPECT_EQ(ready.next, NodeState::ready);
    EXPECT_TRUE(ready.has(act_promote));
    EXPECT_FALSE(ready.has(act_release)) << "the name moves to the successor, it is never free";
    EXPECT_FALSE(transition(NodeState::replacing, NodeEvent::ready, in_reload)) << "the old one is ready already";
    EXPECT_FALSE(transition(NodeState::replacing, NodeEvent::restart, in_reload)) << "one job at a time";
    EXPECT_FALSE(transition(NodeState::ready, NodeEvent::successor_ready, in_reload)) << "a late successor event";
}

TEST(NodeLifecycle, ABrokenSuccessorNeverTakesTheNodeDown) {
    auto step = must(NodeState::replacing, NodeEvent::successor_failed, in_reload);
    EXPECT_EQ(step.next, NodeState::ready) << "the old process serves on";
    EXPECT_TRUE(step.has(act_end_successor) && step.has(act_reload_failed) && step.has(act_job_failed));
    EXPECT_FALSE(step.has(act_begin_stop) || step.has(act_release) || step.has(act_emit_gone));
}

TEST(NodeLifecycle, WhatCannotOverlapIsReplacedStopThenStart) {
    NodeFacts no_overlap = in_reload;
    no_overlap.can_overlap = false;
    auto step = must(NodeState::ready, NodeEvent::replace, no_overlap);
    EXPECT_EQ(step.next, NodeState::stopping);
    EXPECT_TRUE(step.has(act_begin_stop));
    EXPECT_EQ(must(NodeState::starting, NodeEvent::replace, in_reload).next, NodeState::stopping)
        << "a node that does not serve yet is restarted";
    EXPECT_TRUE(must(NodeState::backoff, NodeEvent::replace, in_reload).has(act_spawn));
}

TEST(NodeLifecycle, TheOldProcessDyingMidReplaceHandsTheNodeToItsSuccessor) {
    for (bool clean : {false, true}) {
        NodeFacts facts = in_reload;
        facts.clean_exit = clean;
        auto step = must(NodeState::replacing, NodeEvent::exited, facts);
        EXPECT_EQ(step.next, NodeState::starting);
        EXPECT_TRUE(step.has(act_adopt_successor));
        EXPECT_FALSE(step.has(act_release) || step.has(act_spawn) || step.has(act_job_failed));
    }
    auto stop = must(NodeState::replacing, NodeEvent::stop, in_reload);
    EXPECT_EQ(stop.next, NodeState::stopping);
    EXPECT_TRUE(stop.has(act_end_successor) && stop.has(act_begin_stop));
}

// Whole-table invariants: what is not alive never gets a signal; leaving `active` always frees the name; the
// master never loses track of a live process.
TEST(NodeLifecycle, TableInvariants) {
    for (NodeState state : all_states)
        for (NodeEvent event : all_events)
            for (const NodeFacts& base : {first_start, ran_before, in_restart, in_reload})
                for (bool clean : {false, true}) {
                    NodeFacts facts = base;
                    facts.clean_exit = clean;
                    auto step = transition(state, event, facts);
                    if (!step) continue;
                    const std::string where = std::string(state_name(state)) + " × " + std::string(event_name(event)) +
                                              " → " + std::string(state_name(step->next));
                    auto implies = [](bool a, bool b) { return !a || b; };
                    EXPECT_TRUE(implies(step->has(act_begin_stop), alive(state))) << where;
                    EXPECT_TRUE(implies(active(state) && !active(step->next), step->has(act_release))) << where;
                    EXPECT_TRUE(implies(step->has(act_spawn), step->next == NodeState::starting)) << where;
                    EXPECT_TRUE(implies(step->next == NodeState::starting && !alive(state), step->has(act_spawn)))
                        << where;
                    EXPECT_TRUE(implies(alive(state) && event != NodeEvent::exited && event != NodeEvent::spawn_failed,
                                        alive(step->next)))
                        << where << ": only its exit ends a live process";
                    EXPECT_TRUE(implies(step->has(act_job_failed), facts.restarting)) << where;
                    // A successor exists exactly in `replacing`: begun on the way in, and on every way out
                    // promoted, ended or adopted, exactly one of them.
                    const bool in = state == NodeState::replacing, out = step->next == NodeState::replacing;
                    EXPECT_EQ(step->has(act_spawn_successor), !in && out) << where;
                    const int ways_out =
                        step->has(act_promote) + step->has(act_end_successor) + step->has(act_adopt_successor);
                    EXPECT_EQ(ways_out, in && !out ? 1 : 0) << where;
                    EXPECT_TRUE(implies(step->has(act_spawn_successor), state == NodeState::ready && facts.can_overlap))
                        << where << ": only a serving node gets a successor";
                    EXPECT_TRUE(implies(in, !step->has(act_release) && !step->has(act_spawn)))
                        << where << ": the name never goes free mid-replace, and no second spawn";
                    EXPECT_TRUE(implies(step->has(act_reload_failed), step->has(act_end_successor))) << where;
                }
}

}  // namespace ccmulti::supervisor
