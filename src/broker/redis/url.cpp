#include "broker/redis/url.hpp"

#include <algorithm>
#include <charconv>

#include "util/error.hpp"

namespace ccmulti::broker::redis {

namespace {

std::string masked_one(std::string_view url);

// The URL as it may appear in a message: never with the password (in any of a sentinel URL's parts).
std::string masked(std::string_view url) {
    std::string out;
    while (true) {
        auto semicolon = url.find(';');
        out += masked_one(url.substr(0, semicolon));
        if (semicolon == std::string_view::npos) return out;
        out += ';';
        url = url.substr(semicolon + 1);
    }
}

std::string masked_one(std::string_view url) {
    auto scheme_end = url.find("://");
    auto at = url.rfind('@');
    if (scheme_end == std::string_view::npos || at == std::string_view::npos || at < scheme_end)
        return std::string(url);
    std::string_view userinfo = url.substr(scheme_end + 3, at - scheme_end - 3);
    auto colon = userinfo.find(':');
    std::string user = colon == std::string_view::npos ? "" : std::string(userinfo.substr(0, colon));
    return std::string(url.substr(0, scheme_end + 3)) + user + ":***" + std::string(url.substr(at));
}

[[noreturn]] void bad(std::string_view url, const std::string& why) {
    throw UsageError("Redis URL " + masked(url) + ": " + why);
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string percent_decode(std::string_view text, std::string_view url) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        int hi = i + 2 < text.size() ? hex_value(text[i + 1]) : -1;
        int lo = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
        if (hi < 0 || lo < 0) bad(url, "bad percent-encoding in the password");
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

int parse_int(std::string_view text, std::string_view url, const char* what, int min, int max) {
    int value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < min || value > max)
        bad(url, std::string(what) + " '" + std::string(text) + "' is not a number from " + std::to_string(min) +
                     " to " + std::to_string(max));
    return value;
}

// Query options as given, for a sentinel URL's checks (an option given twice must agree).
struct Query {
    std::optional<std::string> master_name;
    std::optional<int> visibility_timeout;
};

void parse_query(std::string_view query, std::string_view url, Query& out, bool sentinel) {
    while (!query.empty()) {
        auto amp = query.find('&');
        std::string_view item = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (item.empty()) continue;
        auto eq = item.find('=');
        std::string_view key = item.substr(0, eq);
        std::string_view value = eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1);
        if (key == "visibility_timeout") {
            int seconds = parse_int(value, url, "visibility_timeout", 1, 1 << 30);
            if (out.visibility_timeout && *out.visibility_timeout != seconds)
                bad(url, "visibility_timeout is given twice with different values");
            out.visibility_timeout = seconds;
        } else if (key == "master_name" && sentinel) {
            if (value.empty() || value.find_first_of(" \t") != std::string_view::npos)
                bad(url, "master_name '" + std::string(value) + "' is not a Sentinel master name");
            if (out.master_name && *out.master_name != value)
                bad(url, "master_name is given twice with different values");
            out.master_name = std::string(value);
        } else {
            bad(url, "unknown option '" + std::string(key) +
                         "' (supported: " + (sentinel ? "master_name, visibility_timeout)" : "visibility_timeout)"));
        }
    }
}

// One URL's parts after the scheme: [[user]:password@]host[:port][/db][?query][#…]. Host and port stay as they
// are in `out` when the URL gives none.
void parse_rest(std::string_view rest, std::string_view url, RedisUrl& out, Query& query, bool sentinel) {
    if (auto hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
    if (auto q = rest.find('?'); q != std::string_view::npos) {
        parse_query(rest.substr(q + 1), url, query, sentinel);
        rest = rest.substr(0, q);
    }
    std::string_view authority = rest.substr(0, rest.find('/'));
    std::string_view path = rest.size() > authority.size() ? rest.substr(authority.size() + 1) : std::string_view{};

    if (auto at = authority.rfind('@'); at != std::string_view::npos) {
        std::string_view userinfo = authority.substr(0, at);
        authority = authority.substr(at + 1);
        auto colon = userinfo.find(':');
        if (colon == std::string_view::npos) {
            // kombu reads "redis://secret@host" as a password, like redis-py.
            out.password = percent_decode(userinfo, url);
        } else {
            if (colon > 0) out.username = percent_decode(userinfo.substr(0, colon), url);
            out.password = percent_decode(userinfo.substr(colon + 1), url);
        }
        if (out.password->empty()) out.password.reset();
    }

    std::string_view host = authority, port;
    if (authority.starts_with('[')) {
        auto close = authority.find(']');
        if (close == std::string_view::npos) bad(url, "unterminated [IPv6] address");
        host = authority.substr(1, close - 1);
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (!after.starts_with(':')) bad(url, "unexpected text after the [IPv6] address");
            port = after.substr(1);
        }
    } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    if (!host.empty()) out.host = std::string(host);
    if (!port.empty()) out.port = parse_int(port, url, "port", 1, 65535);

    while (path.ends_with('/')) path.remove_suffix(1);
    if (!path.empty()) out.db = parse_int(path, url, "database number", 0, 1 << 20);
}

constexpr std::string_view sentinel_scheme = "sentinel://";
constexpr int sentinel_port = 26379;

// sentinel://…;sentinel://…: each part names one sentinel; login and db come from the first part that gives them
// (kombu reads the first URL's), and a later part that gives other ones is refused rather than ignored.
RedisUrl parse_sentinel_url(std::string_view url) {
    RedisUrl out;
    Query query;
    bool first = true;
    std::string_view rest = url;
    while (true) {
        auto semicolon = rest.find(';');
        std::string_view part = rest.substr(0, semicolon);
        if (!part.starts_with(sentinel_scheme))
            bad(url, part.empty() ? "empty sentinel address between ';'"
                                  : "'" + masked(part) +
                                        "' is not sentinel://HOST[:PORT]: every ';'-separated "
                                        "part names one sentinel");
        RedisUrl one;
        one.port = sentinel_port;
        one.db = -1;  // not given
        parse_rest(part.substr(sentinel_scheme.size()), url, one, query, true);
        if (first) {
            out.username = one.username;
            out.password = one.password;
            out.db = std::max(one.db, 0);
        } else if ((one.password && (one.password != out.password || one.username != out.username)) ||
                   (one.db >= 0 && one.db != out.db)) {
            bad(url,
                "the parts give different passwords or database numbers (kombu uses the first part's; give "
                "them once, in the first)");
        }
        out.sentinels.emplace_back(one.host, one.port);
        first = false;
        if (semicolon == std::string_view::npos) break;
        rest = rest.substr(semicolon + 1);
    }
    if (!query.master_name)
        bad(url,
            "no master name: add ?master_name=NAME (the name in the sentinels' `sentinel monitor NAME …`; kombu's "
            "broker_transport_options={'master_name': NAME}), or set [broker] transport_options = { master_name = "
            "\"NAME\" } in the configuration");
    out.master_name = *query.master_name;
    if (query.visibility_timeout) out.visibility_timeout = std::chrono::seconds(*query.visibility_timeout);
    out.host.clear();
    out.port = 0;
    return out;
}

}  // namespace

std::string host_port(const std::string& host, int port) {
    return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string RedisUrl::address() const {
    if (!sentinel()) return host_port(host, port);
    std::string list;
    for (const auto& [name, number] : sentinels) list += (list.empty() ? "" : ",") + host_port(name, number);
    return "master " + master_name + " of sentinels " + list;
}

std::string RedisUrl::display() const {
    std::string auth;
    if (password) auth = username.value_or("") + ":***@";
    if (!sentinel()) return "redis://" + auth + address() + "/" + std::to_string(db);
    std::string out;
    for (const auto& [name, number] : sentinels) {
        out += out.empty() ? "sentinel://" + auth + host_port(name, number) + "/" + std::to_string(db)
                           : ";sentinel://" + host_port(name, number);
    }
    return out + "?master_name=" + master_name;
}

bool RedisUrl::same_database(const RedisUrl& other) const {
    return host == other.host && port == other.port && sentinels == other.sentinels &&
           master_name == other.master_name && db == other.db && username == other.username &&
           password == other.password;
}

bool is_sentinel_url(std::string_view url) {
    return url.starts_with("sentinel:");
}

bool is_redis_url(std::string_view url) {
    return url.starts_with("redis:") || url.starts_with("rediss:") || url.starts_with("redis+socket:") ||
           url.starts_with("unix:") || url.starts_with("socket:") || is_sentinel_url(url);
}

RedisUrl parse_redis_url(std::string_view url) {
    if (url.starts_with("rediss:"))
        bad(url,
            "TLS (rediss://) is not supported: Debian's hiredis 0.14 is built without SSL; use redis:// "
            "on a trusted network or a TLS tunnel");
    if (is_sentinel_url(url)) return parse_sentinel_url(url);
    if (!url.starts_with("redis://"))
        bad(url,
            "only redis://[:password@]host[:port][/db] and sentinel://host[:port];… are supported (no unix "
            "sockets)");
    RedisUrl out;
    Query query;
    parse_rest(url.substr(8), url, out, query, false);
    if (query.visibility_timeout) out.visibility_timeout = std::chrono::seconds(*query.visibility_timeout);
    return out;
}

std::string with_transport_options(const std::string& url, const TransportOptions& options) {
    if (!url.starts_with("redis://") && !is_sentinel_url(url)) return url;
    std::string added;
    auto has = [&url](std::string_view key) {
        std::string needle(key);
        needle += '=';
        for (auto at = url.find(needle); at != std::string::npos; at = url.find(needle, at + 1))
            if (at > 0 && (url[at - 1] == '?' || url[at - 1] == '&')) return true;
        return false;
    };
    if (options.master_name && is_sentinel_url(url) && !has("master_name"))
        added += "&master_name=" + *options.master_name;
    if (options.visibility_timeout && !has("visibility_timeout"))
        added += "&visibility_timeout=" + std::to_string(*options.visibility_timeout);
    if (added.empty()) return url;
    // Onto the last part's query (a sentinel URL's options may sit on any part), before any #fragment.
    std::string out = url;
    auto last = out.rfind(';');
    auto hash = out.find('#', last == std::string::npos ? 0 : last);
    std::string fragment = hash == std::string::npos ? "" : out.substr(hash);
    if (hash != std::string::npos) out.erase(hash);
    auto question = out.find('?', last == std::string::npos ? 0 : last);
    if (question == std::string::npos) added[0] = '?';
    return out + added + fragment;
}

}  // namespace ccmulti::broker::redis
