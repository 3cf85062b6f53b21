#include "naming/cluster.hpp"

#include <algorithm>
#include <array>
#include <filesystem>
#include <set>

#include "util/error.hpp"
#include "util/strings.hpp"

namespace ccmulti::naming {

namespace {

// Options Celery moves before the `worker` subcommand because they belong to the `celery` program.
constexpr std::array<const char*, 12> app_options = {"-A",       "--app",    "-b", "--broker",   "--result-backend",
                                                     "--loader", "--config", "-C", "--no-color", "--workdir",
                                                     "-q",       "--quiet"};

bool is_app_option(const std::string& name) {
    return std::any_of(app_options.begin(), app_options.end(), [&](const char* o) { return name == o; });
}

// "--opt=value" for long options, "-o" "value" for short ones, the bare name when there is no value.
void append_formatted(std::vector<std::string>& out, const std::string& name, const std::string& value) {
    if (value.empty())
        out.push_back(name);
    else if (name.starts_with("--"))
        out.push_back(name + "=" + value);
    else {
        out.push_back(name);
        out.push_back(value);
    }
}

// Where an option table came from, for messages: "-c:5".
std::string namespace_label(const std::string& ns, const Options& options) {
    return (options.empty() ? std::string("option") : options.items().front().name) + ":" + ns;
}

int parse_index(const std::string& text, const std::string& label) {
    if (!is_digits(text) || text.size() > 6) throw UsageError("bad node number '" + text + "' in " + label);
    return std::stoi(text);
}

// "1-3" → 1 2 3 (only in count mode), "w1,w2" → w1 w2.
std::vector<std::string> expand_namespace(const std::string& ns, bool count_mode, const std::string& label) {
    std::vector<std::string> out;
    for (const auto& space : ns.find(',') != std::string::npos ? split(ns, ',') : std::vector{ns}) {
        if (!count_mode || space.find('-') == std::string::npos) {
            out.push_back(space);
            continue;
        }
        auto bounds = split(space, '-');
        if (bounds.size() != 2) throw UsageError("bad node range '" + space + "' in " + label + " (want FIRST-LAST)");
        int first = parse_index(bounds[0], label), last = parse_index(bounds[1], label);
        for (int n = first; n <= last; ++n) out.push_back(std::to_string(n));
    }
    return out;
}

std::string take_string(Options& options, const std::string& name, std::string fallback) {
    auto taken = options.take(name);
    if (!taken) return fallback;
    if (!*taken || (*taken)->empty()) throw UsageError(name + " needs a value");
    return **taken;
}

// An empty default sets nothing: the caller fills the option in itself (from the configuration).
void set_default(Options& options, std::initializer_list<const char*> names, const std::string& value) {
    if (value.empty()) return;
    for (const char* name : names)
        if (options.contains(name)) return;
    options.set(*names.begin(), std::filesystem::path(value).lexically_normal().string());
}

}  // namespace

std::string Node::expand(std::string_view text, std::string_view origin) const {
    return naming::expand(text, node_keys(shortname, host), origin);
}

std::optional<std::string> Node::option(std::initializer_list<const char*> alternatives) const {
    for (const char* flag : alternatives)
        if (const auto* found = options.find(flag)) return expand(found->value.value_or(""), flag);
    return std::nullopt;
}

std::vector<std::string> Node::option_values(const char* flag) const {
    std::vector<std::string> out;
    for (const auto& value : options.values(flag)) out.push_back(expand(value, flag));
    return out;
}

std::string Node::pidfile() const {
    return option({"--pidfile", "-p"}).value_or("");
}
std::string Node::logfile() const {
    return option({"--logfile", "-f"}).value_or("");
}

std::vector<std::string> Node::worker_args() const {
    std::vector<std::string> moved, rest;
    for (const auto& [flag, value] : options.items()) {
        std::string expanded = expand(value.value_or(""), flag);
        if (is_app_option(flag)) {
            // Celery inserts each at the same position, so they end up in reverse order.
            std::vector<std::string> formatted;
            append_formatted(formatted, flag, expanded);
            moved.insert(moved.begin(), formatted.begin(), formatted.end());
        } else {
            append_formatted(rest, flag, expanded);
        }
    }
    moved.insert(moved.end(), rest.begin(), rest.end());
    moved.insert(moved.end(), passthrough.begin(), passthrough.end());
    if (append) moved.push_back(expand(*append, "--append"));
    return moved;
}

void check_node_name(const std::string& name) {
    // A name becomes file names (%n.pid, %n.log), a process title and log lines: it must stay one path
    // component and one line. Celery accepts anything; these names only ever broke things there.
    auto fail = [&](const std::string& why) {
        std::string shown;
        for (unsigned char c : name.substr(0, 80)) shown += c < 0x20 || c == 0x7f ? '?' : static_cast<char>(c);
        throw UsageError("bad node name '" + shown + (name.size() > 80 ? "…" : "") + "': " + why);
    };
    const auto at = name.find('@');
    const std::string shortname = name.substr(0, at);
    if (shortname.empty()) fail("the part before @ is empty");
    if (name.size() > max_node_name) fail("longer than " + std::to_string(max_node_name) + " characters");
    if (name.find('/') != std::string::npos) fail("a '/' would put its files outside their directories");
    if (shortname == "." || shortname == "..") fail("'.' and '..' are directories");
    for (unsigned char c : name)
        if (c < 0x20 || c == 0x7f) fail("control characters (a newline, a tab) are not allowed");
    if (shortname.starts_with("-")) fail("it would read as an option");
}

std::vector<Node> build_nodes(ParsedArgs parsed, const NamingDefaults& defaults) {
    Options options = parsed.options;
    if (options.contains("--cmd"))
        throw UsageError("--cmd is not supported; use --exec 'PROGRAM ARGS' to run another program per node");
    std::optional<std::string> append;
    if (auto taken = options.take("--append")) append = taken->value_or("");
    std::string hostname = take_string(options, "-n", defaults.hostname);
    hostname = take_string(options, "--hostname", hostname);
    std::string prefix = options.take("--prefix").value_or(std::nullopt).value_or("");
    std::string suffix = options.take("--suffix").value_or(std::nullopt).value_or("");
    if (suffix.empty()) suffix = hostname;
    if (suffix == "\"\"" || suffix == "''") suffix.clear();
    std::string range_prefix = options.take("--range-prefix").value_or(std::nullopt).value_or("");
    if (range_prefix.empty()) range_prefix = "celery";

    std::vector<std::string> names = parsed.names;
    bool count_mode = names.size() == 1;
    if (count_mode && is_digits(names[0])) {
        if (names[0].size() > 4 || std::stoi(names[0]) < 1)
            throw UsageError("node count must be between 1 and 9999, got " + names[0]);
        int count = std::stoi(names[0]);
        names.clear();
        for (int n = 1; n <= count; ++n) names.push_back(std::to_string(n));
        prefix = range_prefix;
    }
    if (names.empty()) throw UsageError("no nodes given: name them (w1 w2) or give a count (3)");

    TemplateKeys machine = host_keys(defaults.hostname);

    // "-c:2 8": numbers always mean the node's position in the list.
    Namespaces& spaces = parsed.namespaces;
    std::vector<std::string> snapshot;
    for (const auto& [ns, _] : spaces.items()) snapshot.push_back(ns);
    for (const auto& ns : snapshot) {
        if (!is_digits(ns)) continue;
        Options copy = *spaces.find(ns);
        int index = parse_index(ns, namespace_label(ns, copy));
        if (index < 1) throw UsageError("node numbers start at 1 in " + namespace_label(ns, copy));
        if (static_cast<std::size_t>(index) > names.size())
            throw UsageError("no node number " + ns + " in " + namespace_label(ns, copy) + " (there are " +
                             std::to_string(names.size()) + " nodes)");
        // Celery files the options under the name as written, so "w3@%h" never matched its node; we use the
        // expanded name, which does.
        const std::string& target = names[static_cast<std::size_t>(index) - 1];
        spaces[target.find('@') == std::string::npos ? target : expand(target, machine, "node name")].update(copy);
    }
    // "-Q:w1,w2 high", "-Q:1-3 images": spread over each named node, applied after the single ones.
    for (const auto& ns : snapshot) {
        if (ns.find(',') == std::string::npos && !(count_mode && ns.find('-') != std::string::npos)) continue;
        Options copy = *spaces.find(ns);
        for (const auto& sub : expand_namespace(ns, count_mode, namespace_label(ns, copy))) spaces[sub].update(copy);
        spaces.erase(ns);
    }

    std::vector<Node> nodes;
    std::set<std::string> used;
    for (const auto& name : names) {
        Node node;
        std::string space = name;
        if (name.find('@') != std::string::npos) {
            node.name = expand(name, machine, "node name");
            auto at = node.name.find('@');
            space = node.name.substr(0, at);
        } else {
            node.name = expand(prefix + name + "@" + suffix, machine, "node name");
        }
        check_node_name(node.name);
        auto at = node.name.find('@');
        node.shortname = node.name.substr(0, at);
        node.host = node.name.substr(at + 1);
        // Celery looks up the full name, then the name as written ("2" in count mode); we also accept the
        // short name ("celery2"), which Celery silently ignores.
        for (const auto& candidate : {node.name, space, node.shortname})
            if (spaces.find(candidate)) {
                space = candidate;
                break;
            }

        node.options = options;
        if (const auto* own = spaces.find(space)) {
            node.options.update(*own);
            used.insert(space);
        }
        node.options.set("-n", node.name);
        set_default(node.options, {"--pidfile", "-p"}, defaults.pidfile);
        set_default(node.options, {"--logfile", "-f"}, defaults.logfile);
        node.passthrough = parsed.passthrough;
        node.append = append;
        node.worker_args();  // expands every template now, so a bad one is an error before anything runs
        nodes.push_back(std::move(node));
    }
    // Celery silently ignores options for a node that does not exist ("-c:w9 4" with nodes w1 w2).
    for (const auto& [ns, table] : spaces.items()) {
        if (used.contains(ns) || is_digits(ns)) continue;
        std::vector<std::string> known;
        for (const auto& node : nodes) known.push_back(node.name);
        throw UsageError(namespace_label(ns, table) + " names no node; nodes are: " + join(known, " "));
    }
    return nodes;
}

const Node& find_node(const std::vector<Node>& nodes, const std::string& name) {
    for (const auto& node : nodes)
        if (node.name == name) return node;
    const Node* by_short = nullptr;
    for (const auto& node : nodes) {
        if (node.shortname != name) continue;
        if (by_short) throw UsageError("'" + name + "' matches more than one node; give the full name (name@host)");
        by_short = &node;
    }
    if (by_short) return *by_short;
    std::vector<std::string> known;
    for (const auto& node : nodes) known.push_back(node.name);
    throw UsageError("no such node '" + name + "'; nodes are: " + join(known, " "));
}

}  // namespace ccmulti::naming
