// libFuzzer target: the celery-multi grammar (naming/) turns any command line into nodes or one UsageError; a
// crash, a hang, a sanitizer report or any other exception escaping is a bug (scripts/fuzz). The input is the
// argument vector, words separated by NUL bytes (a shell cannot pass NUL, so every byte sequence is a line).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "naming/cluster.hpp"
#include "naming/options.hpp"
#include "util/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::string> args;
    std::string word;
    for (std::size_t i = 0; i < size; ++i) {
        if (data[i] == 0) {
            args.push_back(word);
            word.clear();
        } else {
            word += static_cast<char>(data[i]);
        }
    }
    if (!word.empty()) args.push_back(word);
    try {
        auto nodes = ccmulti::naming::build_nodes(ccmulti::naming::parse_args(args),
                                                  ccmulti::naming::NamingDefaults{"host.example", "", ""});
        for (const auto& node : nodes) {
            ccmulti::naming::check_node_name(node.name);  // every node built is a valid name
            (void)node.worker_args();
            (void)node.pidfile();
            (void)node.logfile();
        }
    } catch (const ccmulti::UsageError&) {
        // the one way to say no
    }
    return 0;
}
