// The celery-multi option grammar: node names, global options, per-node namespaced options and `--`
// passthrough, parsed exactly as `celery multi` does (celery/apps/multi.py, NamespacedOptionParser) with the
// additions listed in docs/celery-compat.md.
//
//   w1 w2 -c 2 -Q:w1,w2 high --logfile=%n.log -- --extra
//   ^^^^^ names   ^^^^^^^^^^^^^ option "-Q" in namespace "w1,w2"   ^^^^^^^^^^ passthrough
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ccmulti::naming {

// An option as written, dashes included ("-c", "--logfile"); no value means a bare flag.
struct Option {
    std::string name;
    std::optional<std::string> value;
};

// Options in first-seen order where setting an existing name replaces its value in place: the semantics of
// Python's OrderedDict that Celery relies on ("last repeated option wins", position of the first).
// ccmulti's repeatable options (--watch PATH --watch PATH2, is_repeatable) are the exception: each occurrence
// is kept; update() replaces all of a name's values with `other`'s, so `--watch:w1 X` beats a global `--watch Y`.
class Options {
public:
    void set(const std::string& name, std::optional<std::string> value);
    void update(const Options& other);  // set() every option of `other`, in its order
    const Option* find(const std::string& name) const;                        // the first of a repeatable option
    std::vector<std::string> values(const std::string& name) const;           // every value given ("" for a bare flag)
    std::optional<std::optional<std::string>> take(const std::string& name);  // remove and return
    bool contains(const std::string& name) const { return find(name) != nullptr; }
    const std::vector<Option>& items() const { return items_; }
    bool empty() const { return items_.empty(); }

private:
    std::vector<Option> items_;
};

// Namespaced option tables ("w1", "1", "1-3", "w1,w2") in first-seen order.
class Namespaces {
public:
    Options& operator[](const std::string& name);  // creates an empty table at the end when missing
    const Options* find(const std::string& name) const;
    void erase(const std::string& name);
    const std::vector<std::pair<std::string, Options>>& items() const { return items_; }

private:
    std::vector<std::pair<std::string, Options>> items_;
};

struct ParsedArgs {
    std::vector<std::string> names;        // positional arguments: node names or a count
    Options options;                       // options for every node
    Namespaces namespaces;                 // per-node options
    std::vector<std::string> passthrough;  // "--" and everything after it, verbatim
};

// Options given more than once add up instead of replacing each other: --watch, --watch-ignore.
bool is_repeatable(const std::string& name);

// Parses a celery-multi argument list. Throws UsageError for input Celery itself would crash on (a lone "-").
ParsedArgs parse_args(const std::vector<std::string>& args);

// True for long options that take a value, so that ccmulti can accept `--logfile x` as well as
// `--logfile=x` (Celery only knows the latter; with it, `x` would become a node name).
bool long_option_takes_value(const std::string& name);

}  // namespace ccmulti::naming
