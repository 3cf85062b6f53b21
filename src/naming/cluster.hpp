// From a parsed celery-multi command line to the list of nodes it names, each with its effective options:
// what `celery multi` computes in MultiParser and Node (celery/apps/multi.py), behaviour for behaviour,
// except where docs/celery-compat.md says otherwise.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "naming/options.hpp"
#include "naming/template.hpp"

namespace ccmulti::naming {

struct Node {
    std::string name;       // full node name, "w1@host"
    std::string shortname;  // "w1"
    std::string host;       // "host"
    Options options;        // effective options in Celery's order, "-n", "--pidfile", "--logfile" included
    std::vector<std::string> passthrough;
    std::optional<std::string> append;

    // Expands a template for this node; `origin` names where it came from, for errors.
    std::string expand(std::string_view text, std::string_view origin) const;

    // The value of the first of `names` present ("--pidfile", "-p"), expanded; nullopt when none is set.
    std::optional<std::string> option(std::initializer_list<const char*> names) const;
    // Every value of a repeatable option (--watch), expanded, in the order given.
    std::vector<std::string> option_values(const char* flag) const;

    std::string pidfile() const;  // expanded; %i/%I stay
    std::string logfile() const;

    // Worker arguments as separate argv tokens: app-level options first (as Celery moves them before the
    // `worker` subcommand), then the other options, then the passthrough and --append.
    std::vector<std::string> worker_args() const;
};

struct NamingDefaults {
    std::string hostname;  // this machine's host name
    std::string pidfile;   // template, e.g. "/run/ccmulti/%n.pid"; "" sets no --pidfile
    std::string logfile;   // template, e.g. "/var/log/ccmulti/%n%I.log"; "" sets no --logfile
};

// The longest node name (user@host): its files (%n.pid, %n%I.log) must fit a file name.
inline constexpr std::size_t max_node_name = 200;

// Throws UsageError for a name that cannot be a node: a '/', a control character, '.' or '..', a leading '-',
// an empty short name, or more than max_node_name characters.
void check_node_name(const std::string& name);

// Throws UsageError for what Celery would crash on or silently ignore: no nodes, a count of 0, an index
// namespace with no node, a malformed range, an unknown template, a name check_node_name refuses.
std::vector<Node> build_nodes(ParsedArgs parsed, const NamingDefaults& defaults);

// The node called `name` (full name, or short name when unambiguous), or UsageError listing the names.
const Node& find_node(const std::vector<Node>& nodes, const std::string& name);

}  // namespace ccmulti::naming
