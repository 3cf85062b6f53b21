#include "broker/redis/sentinel.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <vector>

#include "broker/redis/connection.hpp"

namespace ccmulti::broker::redis {

namespace {

// The sentinels are asked with a short timeout each: a dead one must not hold up the others for long.
constexpr std::chrono::milliseconds max_sentinel_timeout{2000};

// Per sentinel URL (its address() names the master and the sentinels), process-wide: nodes are single-threaded.
std::map<std::string, std::size_t>& preferred() {
    static std::map<std::string, std::size_t> index;
    return index;
}

std::map<std::string, std::uint64_t>& generations() {
    static std::map<std::string, std::uint64_t> values;
    return values;
}

RedisUrl sentinel_at(const std::pair<std::string, int>& address) {
    RedisUrl url;
    url.host = address.first;
    url.port = address.second;
    return url;
}

// The sentinels in the order to try them: the one that answered last time first.
std::vector<std::size_t> asking_order(const RedisUrl& url) {
    std::vector<std::size_t> order;
    const std::size_t first = preferred()[url.address()] % url.sentinels.size();
    for (std::size_t i = 0; i < url.sentinels.size(); ++i) order.push_back((first + i) % url.sentinels.size());
    return order;
}

}  // namespace

MasterAddress resolve_master(const RedisUrl& url, std::chrono::milliseconds timeout) {
    const auto each = std::min(timeout, max_sentinel_timeout);
    std::string reasons;
    for (std::size_t index : asking_order(url)) {
        const auto& address = url.sentinels[index];
        std::string why;
        try {
            Connection sentinel(sentinel_at(address), each);
            Reply reply = sentinel.try_command({"SENTINEL", "get-master-addr-by-name", url.master_name});
            int port = 0;
            if (reply.is_error()) {
                why = reply.string();
            } else if (!reply.is_array() || reply.size() != 2) {
                why = "knows no master named '" + url.master_name + "'";
            } else {
                std::string_view text = reply[1].text();
                auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
                if (ec != std::errc() || end != text.data() + text.size() || port < 1 || port > 65535)
                    why = "answered a bad port '" + std::string(text) + "'";
            }
            if (why.empty()) {
                preferred()[url.address()] = index;
                return {reply[0].string(), port};
            }
            why = host_port(address.first, address.second) + ": " + why;
        } catch (const ConnectionError& error) {
            why = error.what();  // "redis HOST:PORT: connection refused"
            if (why.starts_with("redis ")) why.erase(0, 6);
        }
        reasons += (reasons.empty() ? "" : "; ") + why;
    }
    throw ConnectionError("redis master " + url.master_name + ": no sentinel gave its address (" + reasons + ")");
}

std::uint64_t master_generation(const RedisUrl& url) {
    if (!url.sentinel()) return 0;
    auto found = generations().find(url.address());
    return found == generations().end() ? 0 : found->second;
}

void bump_master_generation(const RedisUrl& url) {
    if (url.sentinel()) ++generations()[url.address()];
}

SwitchWatch::SwitchWatch(const RedisUrl& url) : url_(url) {
    std::string reasons;
    for (std::size_t index : asking_order(url_)) {
        try {
            auto connection = std::make_unique<Connection>(sentinel_at(url_.sentinels[index]), max_sentinel_timeout);
            connection->set_nonblocking();
            connection->send({"SUBSCRIBE", "+switch-master"});
            connection_ = std::move(connection);
            return;
        } catch (const ConnectionError& error) {
            reasons += (reasons.empty() ? "" : "; ") + std::string(error.what());
        }
    }
    throw ConnectionError("redis master " + url_.master_name + ": cannot watch for failovers (" + reasons + ")");
}

SwitchWatch::~SwitchWatch() = default;

int SwitchWatch::fd() const noexcept {
    return connection_ ? connection_->fd() : -1;
}

std::optional<std::string> SwitchWatch::switched() {
    std::optional<std::string> to;
    while (auto message = connection_->read_available()) {
        // ["message", "+switch-master", "<name> <old ip> <old port> <new ip> <new port>"]
        if (message->size() != 3 || (*message)[0].text() != "message") continue;
        std::string text = (*message)[2].string();
        std::vector<std::string> words;
        for (std::size_t start = 0; start <= text.size();) {
            auto space = std::min(text.find(' ', start), text.size());
            words.push_back(text.substr(start, space - start));
            start = space + 1;
        }
        int port = 0;
        if (words.size() != 5 || words[0] != url_.master_name) continue;
        auto [end, ec] = std::from_chars(words[4].data(), words[4].data() + words[4].size(), port);
        if (ec == std::errc() && end == words[4].data() + words[4].size()) to = host_port(words[3], port);
    }
    if (to) bump_master_generation(url_);
    return to;
}

}  // namespace ccmulti::broker::redis
