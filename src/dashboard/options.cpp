#include "dashboard/options.hpp"

#include <arpa/inet.h>
#include <sys/stat.h>

#include <charconv>
#include <fstream>

#include "util/error.hpp"

namespace ccmulti::dashboard {

Bind parse_bind(const std::string& text, const std::string& what) {
    Bind bind{"127.0.0.1", 0};
    std::string port = text;
    if (auto colon = text.rfind(':'); colon != std::string::npos) {
        std::string host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
        if (!host.empty()) bind.host = host;
    }
    int value = -1;
    auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || error != std::errc() || end != port.data() + port.size() || value < 0 || value > 65535 ||
        bind.host.find_first_of(" /") != std::string::npos)
        throw UsageError(what + " takes HOST:PORT (e.g. 127.0.0.1:5555, [::1]:5555, 0.0.0.0:5555), not '" + text + "'");
    bind.port = value;
    return bind;
}

bool is_loopback(const std::string& host) {
    if (host == "localhost") return true;
    in_addr v4{};
    if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    in6_addr v6{};
    if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
    return false;
}

namespace {

std::string read_token_file(const std::string& path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) throw UsageError("--auth-token-file " + path + ": cannot be read");
    if (info.st_mode & (S_IRWXG | S_IRWXO))
        throw UsageError("--auth-token-file " + path + " is readable by others: chmod 600 it");
    std::ifstream file(path);
    std::string line;
    if (!file || !std::getline(file, line)) throw UsageError("--auth-token-file " + path + " is empty");
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    if (line.empty()) throw UsageError("--auth-token-file " + path + " is empty");
    return line;
}

}  // namespace

AccessOptions access_options(const std::string& bind, const std::optional<std::string>& token,
                             const std::optional<std::string>& token_file) {
    AccessOptions options;
    options.bind = parse_bind(bind);
    if (token) {
        if (token->empty()) throw UsageError("--auth-token is empty");
        options.token = *token;
    } else if (token_file) {
        options.token = read_token_file(*token_file);
    }
    if (!options.token && !is_loopback(options.bind.host))
        throw UsageError("refusing to serve the dashboard on " + bind +
                         " without authentication: pass --auth-token TOKEN (or --auth-token-file FILE), or bind "
                         "127.0.0.1");
    return options;
}

std::string url_of(const std::string& host, int port) {
    std::string shown = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return "http://" + shown + ":" + std::to_string(port) + "/";
}

}  // namespace ccmulti::dashboard
