#include "broker/redis/url.hpp"

#include <charconv>

#include "util/error.hpp"

namespace ccmulti::broker::redis {

namespace {

// The URL as it may appear in a message: never with the password.
std::string masked(std::string_view url) {
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

void parse_query(std::string_view query, std::string_view url, RedisUrl& out) {
    while (!query.empty()) {
        auto amp = query.find('&');
        std::string_view item = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (item.empty()) continue;
        auto eq = item.find('=');
        std::string_view key = item.substr(0, eq);
        std::string_view value = eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1);
        if (key == "visibility_timeout")
            out.visibility_timeout = std::chrono::seconds(parse_int(value, url, "visibility_timeout", 1, 1 << 30));
        else
            bad(url, "unknown option '" + std::string(key) + "' (supported: visibility_timeout)");
    }
}

}  // namespace

std::string RedisUrl::address() const {
    return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string RedisUrl::display() const {
    std::string auth;
    if (password) auth = username.value_or("") + ":***@";
    return "redis://" + auth + address() + "/" + std::to_string(db);
}

bool is_redis_url(std::string_view url) {
    return url.starts_with("redis:") || url.starts_with("rediss:") || url.starts_with("redis+socket:") ||
           url.starts_with("unix:") || url.starts_with("socket:");
}

RedisUrl parse_redis_url(std::string_view url) {
    if (url.starts_with("rediss:"))
        bad(url,
            "TLS (rediss://) is not supported: Debian's hiredis 0.14 is built without SSL; use redis:// "
            "on a trusted network or a TLS tunnel");
    if (!url.starts_with("redis://"))
        bad(url, "only redis://[:password@]host[:port][/db] is supported (no unix sockets)");
    RedisUrl out;
    std::string_view rest = url.substr(8);
    if (auto hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
    if (auto q = rest.find('?'); q != std::string_view::npos) {
        parse_query(rest.substr(q + 1), url, out);
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
    return out;
}

}  // namespace ccmulti::broker::redis
