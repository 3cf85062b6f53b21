#include "broker/amqp/url.hpp"

#include <charconv>

#include "util/error.hpp"

namespace ccmulti::broker::amqp {

namespace {

constexpr std::string_view schemes[] = {"amqp://", "amqps://", "pyamqp://", "librabbitmq://"};

std::string percent_decode(std::string_view text, const std::string& url) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        int value = 0;
        if (i + 2 >= text.size() ||
            std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16).ptr != text.data() + i + 3)
            throw UsageError("broker URL " + url + ": bad percent-encoding in '" + std::string(text) + "'");
        out += static_cast<char>(value);
        i += 2;
    }
    return out;
}

int parse_int(std::string_view text, const std::string& what, const std::string& url, int min, int max) {
    int value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || value < min || value > max)
        throw UsageError("broker URL " + url + ": " + what + " '" + std::string(text) + "' is not a number from " +
                         std::to_string(min) + " to " + std::to_string(max));
    return value;
}

// The URL as shown in errors: the password masked.
std::string masked(std::string_view url) {
    std::string text(url);
    auto scheme_end = text.find("://");
    auto at = text.rfind('@');
    if (scheme_end == std::string::npos || at == std::string::npos || at < scheme_end) return text;
    auto colon = text.find(':', scheme_end + 3);
    if (colon == std::string::npos || colon > at) return text;
    return text.substr(0, colon + 1) + "***" + text.substr(at);
}

}  // namespace

bool is_amqp_url(std::string_view url) {
    for (auto scheme : schemes)
        if (url.starts_with(scheme)) return true;
    return false;
}

std::string AmqpUrl::address() const {
    std::string name = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return name + ":" + std::to_string(port);
}

std::string AmqpUrl::display() const {
    std::string vhost_part = vhost == "/" ? "/" : vhost;
    return std::string(tls ? "amqps" : "amqp") + "://" + user + ":***@" + address() + "/" + vhost_part;
}

AmqpUrl parse_amqp_url(std::string_view text) {
    const std::string shown = masked(text);
    if (!is_amqp_url(text))
        throw UsageError("broker URL " + shown + ": not an AMQP URL (amqp://, amqps://, pyamqp://)");
    AmqpUrl url;
    url.tls = text.starts_with("amqps://");
    if (url.tls) url.port = 5671;
    std::string_view rest = text.substr(text.find("://") + 3);
    std::string_view query;
    if (auto question = rest.find('?'); question != std::string_view::npos) {
        query = rest.substr(question + 1);
        rest = rest.substr(0, question);
    }
    std::string_view path;
    bool has_path = false;
    if (auto slash = rest.find('/'); slash != std::string_view::npos) {
        path = rest.substr(slash + 1);
        has_path = true;
        rest = rest.substr(0, slash);
    }
    if (auto at = rest.rfind('@'); at != std::string_view::npos) {
        std::string_view login = rest.substr(0, at);
        rest = rest.substr(at + 1);
        auto colon = login.find(':');
        url.user = percent_decode(login.substr(0, colon), shown);
        if (colon != std::string_view::npos) url.password = percent_decode(login.substr(colon + 1), shown);
    }
    std::string_view host = rest, port;
    if (rest.starts_with("[")) {  // [::1]:5672
        auto close = rest.find(']');
        if (close == std::string_view::npos) throw UsageError("broker URL " + shown + ": unclosed '[' in the host");
        host = rest.substr(1, close - 1);
        if (close + 1 < rest.size()) {
            if (rest[close + 1] != ':') throw UsageError("broker URL " + shown + ": expected ':PORT' after ']'");
            port = rest.substr(close + 2);
        }
    } else if (auto colon = rest.find(':'); colon != std::string_view::npos) {
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
    }
    if (!host.empty()) url.host = std::string(host);
    if (!port.empty()) url.port = parse_int(port, "port", shown, 1, 65535);
    // kombu: no path (or an empty one) is the default vhost "/"; "/%2F" is "/" too; "/name" is "name".
    if (has_path && !path.empty()) url.vhost = percent_decode(path, shown);

    while (!query.empty()) {
        auto amp = query.find('&');
        std::string_view item = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        if (item.empty()) continue;
        auto equals = item.find('=');
        std::string key(item.substr(0, equals));
        std::string value = equals == std::string_view::npos ? "" : percent_decode(item.substr(equals + 1), shown);
        if (key == "heartbeat") {
            url.heartbeat = parse_int(value, "heartbeat", shown, 0, 3600);
        } else if (key == "connect_timeout") {
            double seconds = std::strtod(value.c_str(), nullptr);
            if (!(seconds > 0 && seconds <= 3600))
                throw UsageError("broker URL " + shown + ": connect_timeout '" + value + "' is not seconds (0-3600]");
            url.connect_timeout = std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
        } else if (key == "ssl_ca_certs" || key == "cacert") {
            url.ca_certs = value;
        } else if (key == "ssl_cert_reqs") {
            url.verify = value != "CERT_NONE" && value != "0" && value != "none";
        } else if (key == "ssl_certfile") {
            url.certfile = value;
        } else if (key == "ssl_keyfile") {
            url.keyfile = value;
        } else if (key.starts_with("x-")) {
            url.queue_arguments.emplace_back(key, value);
        } else if (key == "ssl") {
            if (value == "1" || value == "true" || value == "True") url.tls = true;
        } else {
            // kombu takes many more options (login_method, failover_strategy, …); none changes what a node does
            // here, and refusing them would refuse URLs that Celery accepts.
        }
    }
    if (url.tls && url.port == 5672 && port.empty()) url.port = 5671;
    if (!url.certfile.empty() != !url.keyfile.empty())
        throw UsageError("broker URL " + shown + ": give both ssl_certfile and ssl_keyfile, or neither");
    return url;
}

}  // namespace ccmulti::broker::amqp
