// Hot reload's eyes in the master: which nodes a saved file concerns. Each node says what it watches
// (NodeSpec::watch, watch_ignore, watch_debounce); nodes with the same ignores and debounce share one
// FileWatch (platform/file_watch.hpp) over the union of their paths, in the master's EventLoop, so a project
// watched by three nodes costs one set of inotify watches and one debounced batch. Each batch is mapped to the
// nodes that watch a changed root, logged once
//
//     change: proj/tasks.py (+3 more) → replacing w1, w2
//
// and handed to ONE callback with those nodes' names; what "replacing" means (start-before-stop, a rolling
// restart) is the master's business, not this file's.
#pragma once

#include <spdlog/logger.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "platform/event_loop.hpp"
#include "platform/file_watch.hpp"
#include "supervisor/node_spec.hpp"

namespace ccmulti::supervisor {

class CodeWatch {
public:
    // The nodes (full names, in the order the master gave them) to replace, and why ("change: proj/tasks.py").
    // It may call set_nodes() or destroy the CodeWatch.
    using Replace = std::function<void(std::vector<std::string> node_names, std::string reason)>;

    // `log` may be null (a check that only sets the watches up).
    CodeWatch(EventLoop& loop, std::shared_ptr<spdlog::logger> log, Replace replace);
    ~CodeWatch();
    CodeWatch(const CodeWatch&) = delete;
    CodeWatch& operator=(const CodeWatch&) = delete;

    // Watches what `nodes` ask for, instead of what was watched before (a node added, a changed spec). Nodes
    // with an empty `watch` are not watched. Throws UsageError for a path that does not exist and Error when a
    // watch cannot be set up (the inotify limit: the message names fs.inotify.max_user_watches); the previous
    // watches then stay as they were.
    void set_nodes(const std::vector<NodeSpec>& nodes);

    std::size_t file_watches() const { return groups_.size(); }  // one per distinct (ignores, debounce)
    std::size_t watched_directories() const;

private:
    struct Group;

    EventLoop& loop_;
    std::shared_ptr<spdlog::logger> log_;
    Replace replace_;
    std::vector<std::unique_ptr<Group>> groups_;
};

// "change: proj/tasks.py (+3 more) → replacing w1, w2": short names when they say it all (one host).
std::string change_line(const ChangeBatch& batch, const std::vector<std::string>& node_names);

// Sets up (then drops) the watches `nodes` ask for, in a loop of its own: `start` fails on a watch limit before
// a master runs. Throws as set_nodes does.
void check_code_watch(const std::vector<NodeSpec>& nodes);

}  // namespace ccmulti::supervisor
