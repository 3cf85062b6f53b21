#include "supervisor/code_watch.hpp"

#include <algorithm>
#include <set>
#include <utility>

#include "util/strings.hpp"

namespace ccmulti::supervisor {

namespace fs = std::filesystem;

// Which nodes watch which root of one FileWatch: immutable once built, shared with the watch's callback so
// that the callback stays valid whatever set_nodes() does meanwhile.
struct CodeWatchRoots {
    std::vector<std::string> names;               // the group's nodes, in the master's order
    std::vector<std::set<std::size_t>> watchers;  // per root: indexes into `names`

    std::vector<std::string> nodes_for(const std::vector<std::size_t>& roots) const {
        std::set<std::size_t> chosen;
        for (auto root : roots)
            if (root < watchers.size()) chosen.insert(watchers[root].begin(), watchers[root].end());
        std::vector<std::string> out;
        for (auto i : chosen) out.push_back(names[i]);
        return out;
    }
};

namespace {

// The longest a burst may postpone its batch: a file rewritten without pause still reloads.
constexpr std::chrono::milliseconds min_ceiling{2000};

// A root as FileWatch reports it: relative to the master's cwd when below it ("proj/tasks.py" in the log),
// else absolute.
fs::path display_root(const fs::path& absolute, const fs::path& cwd) {
    if (cwd.empty()) return absolute;
    auto [c, p] = std::mismatch(cwd.begin(), cwd.end(), absolute.begin(), absolute.end());
    if (c != cwd.end()) return absolute;
    auto relative = absolute.lexically_relative(cwd);
    return relative.empty() ? fs::path(".") : relative;
}

}  // namespace

struct CodeWatch::Group {
    std::vector<std::string> ignore;  // the nodes' patterns, sorted: the key, with `debounce`
    std::chrono::milliseconds debounce{};
    std::vector<fs::path> roots;  // absolute, in first-seen order
    std::shared_ptr<CodeWatchRoots> map = std::make_shared<CodeWatchRoots>();
    std::unique_ptr<FileWatch> watch;
};

CodeWatch::CodeWatch(EventLoop& loop, std::shared_ptr<spdlog::logger> log, Replace replace)
    : loop_(loop), log_(std::move(log)), replace_(std::move(replace)) {}

CodeWatch::~CodeWatch() = default;

std::size_t CodeWatch::watched_directories() const {
    std::size_t total = 0;
    for (const auto& group : groups_) total += group->watch->watched_directories();
    return total;
}

void CodeWatch::set_nodes(const std::vector<NodeSpec>& nodes) {
    std::vector<std::unique_ptr<Group>> groups;
    for (const auto& spec : nodes) {
        if (spec.watch.empty()) continue;
        auto ignore = spec.watch_ignore;
        std::sort(ignore.begin(), ignore.end());
        ignore.erase(std::unique(ignore.begin(), ignore.end()), ignore.end());
        auto found = std::find_if(groups.begin(), groups.end(), [&](const auto& g) {
            return g->ignore == ignore && g->debounce == spec.watch_debounce;
        });
        if (found == groups.end()) {
            groups.push_back(std::make_unique<Group>());
            groups.back()->ignore = std::move(ignore);
            groups.back()->debounce = spec.watch_debounce;
            found = std::prev(groups.end());
        }
        Group& group = **found;
        const std::size_t node = group.map->names.size();
        group.map->names.push_back(spec.name);
        for (const auto& path : spec.watch) {
            const auto root = path.lexically_normal();
            auto at = std::find(group.roots.begin(), group.roots.end(), root);
            if (at == group.roots.end()) {
                group.roots.push_back(root);
                group.map->watchers.emplace_back();
                at = std::prev(group.roots.end());
            }
            group.map->watchers[static_cast<std::size_t>(at - group.roots.begin())].insert(node);
        }
    }

    std::error_code error;
    const auto cwd = fs::current_path(error);
    for (auto& group : groups) {
        WatchOptions options;
        for (const auto& root : group->roots) options.roots.push_back(display_root(root, error ? fs::path() : cwd));
        for (const auto& glob : group->ignore) options.ignore.add_glob(glob);
        options.debounce.quiet = group->debounce;
        options.debounce.ceiling = std::max(min_ceiling, group->debounce);
        auto on_change = [log = log_, replace = replace_, map = group->map](const ChangeBatch& batch) {
            auto names = map->nodes_for(batch.roots);
            if (names.empty()) return;
            auto line = change_line(batch, names);
            if (log) log->info("{}", line);
            if (replace) replace(std::move(names), "change: " + batch.summary());
        };
        auto on_error = [log = log_](const std::string& problem) {
            if (log) log->warn("watch: {}", problem);
        };
        // Throws (a path gone, the watch limit): `groups_` is untouched, the old watches go on.
        group->watch = std::make_unique<FileWatch>(loop_, std::move(options), on_change, on_error);
    }
    groups_ = std::move(groups);
    if (log_ && !groups_.empty())
        log_->info("watching {} director{} for {} group{} of nodes", watched_directories(),
                   watched_directories() == 1 ? "y" : "ies", groups_.size(), groups_.size() == 1 ? "" : "s");
}

std::string change_line(const ChangeBatch& batch, const std::vector<std::string>& node_names) {
    std::set<std::string> hosts;
    for (const auto& name : node_names) hosts.insert(name.substr(std::min(name.find('@'), name.size())));
    std::vector<std::string> shown;
    for (const auto& name : node_names) shown.push_back(hosts.size() == 1 ? name.substr(0, name.find('@')) : name);
    return "change: " + batch.summary() + " → replacing " + join(shown, ", ");
}

void check_code_watch(const std::vector<NodeSpec>& nodes) {
    if (std::none_of(nodes.begin(), nodes.end(), [](const NodeSpec& spec) { return !spec.watch.empty(); })) return;
    EventLoop loop;
    CodeWatch watch(loop, nullptr, {});
    watch.set_nodes(nodes);
}

}  // namespace ccmulti::supervisor
