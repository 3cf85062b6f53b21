// The asking side of the embedded broker's inspect sockets (worker/inspect.hpp): every node process of this
// machine that uses the run dir answers on `inspect-<node>~<pid>.sock`. A socket nobody listens on (a node that
// died) is skipped; one that does not answer within the timeout counts as no reply. Two processes of one node
// (a node being replaced) give one reply, merged (broker/control_replies.hpp: add_node_reply).
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ccmulti::worker {

// Replies by node name, from the nodes named in `destination` (every node when empty).
std::map<std::string, nlohmann::json> ask_local_nodes(const std::filesystem::path& run_dir, const std::string& method,
                                                      const std::vector<std::string>& destination,
                                                      std::chrono::milliseconds timeout);

// Removes the inspect sockets in `run_dir` that nobody listens on (left by nodes killed with SIGKILL), ours only;
// a node between its bind and its listen is asked twice, 50 ms apart, before its socket counts as stale. Returns
// how many went. A node calls it at start; ask_local_nodes removes the stale ones it meets.
std::size_t remove_stale_inspect_sockets(const std::filesystem::path& run_dir);

}  // namespace ccmulti::worker
