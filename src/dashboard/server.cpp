#include "dashboard/server.hpp"

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/random.h>

#include "dashboard/assets.hpp"
#include "dashboard/metrics.hpp"
#include "reports/reports.hpp"
#include "util/error.hpp"

namespace ccmulti::dashboard {

using nlohmann::json;

namespace {

constexpr const char* token_cookie = "ccmulti_dashboard_token";
constexpr const char* json_type = "application/json";

std::string random_hex(std::size_t bytes) {
    std::string raw(bytes, '\0');
    std::size_t got = 0;
    while (got < bytes) {
        ssize_t n = ::getrandom(raw.data() + got, bytes - got, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw SystemError("getrandom", errno);
        }
        got += static_cast<std::size_t>(n);
    }
    std::string out;
    for (unsigned char c : raw) out += fmt::format("{:02x}", c);
    return out;
}

// Compares in time independent of where the strings differ.
bool same_secret(const std::string& given, const std::string& expected) {
    unsigned char diff = given.size() == expected.size() ? 0 : 1;
    for (std::size_t i = 0; i < expected.size(); ++i)
        diff |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
    return diff == 0;
}

std::string cookie_value(const httplib::Request& request, const std::string& name) {
    const std::string cookies = request.get_header_value("Cookie");
    std::size_t at = 0;
    while (at < cookies.size()) {
        std::size_t end = cookies.find(';', at);
        if (end == std::string::npos) end = cookies.size();
        std::string pair = cookies.substr(at, end - at);
        pair.erase(0, pair.find_first_not_of(' '));
        if (pair.starts_with(name + "=")) return pair.substr(name.size() + 1);
        at = end + 1;
    }
    return {};
}

void send_json_body(httplib::Response& response, const json& body, int status = 200) {
    response.status = status;
    response.set_content(body.dump(), json_type);
}

void send_json_error(httplib::Response& response, int status, const std::string& message) {
    send_json_body(response, {{"ok", false}, {"error", message}}, status);
}

// The host part of an Origin header ("http://127.0.0.1:5555" -> "127.0.0.1:5555").
std::string origin_host(const std::string& origin) {
    auto scheme = origin.find("://");
    return scheme == std::string::npos ? origin : origin.substr(scheme + 3);
}

// Runs `body`, turning what it throws (a broker down, a master gone) into a 503 with the message.
template <class F>
httplib::Server::Handler guarded(F body) {
    return [body](const httplib::Request& request, httplib::Response& response) {
        try {
            body(request, response);
        } catch (const std::exception& e) {
            send_json_error(response, 503, e.what());
        }
    };
}

}  // namespace

Server::Server(const Api& api, Live& live, AccessOptions access)
    : api_(api),
      live_(live),
      access_(std::move(access)),
      csrf_(random_hex(16)),
      http_(std::make_unique<httplib::Server>()) {
    http_->new_task_queue = [] { return new httplib::ThreadPool(16); };
    http_->set_payload_max_length(64 * 1024);
    http_->set_read_timeout(std::chrono::seconds(10));
    http_->set_default_headers(
        {{"X-Content-Type-Options", "nosniff"},
         {"X-Frame-Options", "DENY"},
         {"Referrer-Policy", "no-referrer"},
         {"Content-Security-Policy",
          "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'none'"},
         {"Cache-Control", "no-store"}});
    routes();
}

Server::~Server() = default;

int Server::bind() {
    int port = access_.bind.port == 0
                   ? http_->bind_to_any_port(access_.bind.host)
                   : (http_->bind_to_port(access_.bind.host, access_.bind.port) ? access_.bind.port : -1);
    if (port <= 0)
        throw Error("cannot listen on " + access_.bind.host + ":" + std::to_string(access_.bind.port) +
                    " (in use, or not an address of this machine); choose another with --bind HOST:PORT");
    return port;
}

bool Server::run() {
    return http_->listen_after_bind();
}

void Server::stop() {
    http_->stop();
}

void Server::routes() {
    // Every request but /healthz carries the token when one is set: the Authorization header (scripts,
    // Prometheus' `authorization`), or the cookie a browser got by opening /?token=TOKEN once.
    http_->set_pre_routing_handler([this](const httplib::Request& request, httplib::Response& response) {
        if (!access_.token || request.path == "/healthz") return httplib::Server::HandlerResponse::Unhandled;
        const std::string& token = *access_.token;
        const std::string header = request.get_header_value("Authorization");
        if ((header.starts_with("Bearer ") && same_secret(header.substr(7), token)) ||
            same_secret(cookie_value(request, token_cookie), token))
            return httplib::Server::HandlerResponse::Unhandled;
        if (request.method == "GET" && request.path == "/" && request.has_param("token") &&
            same_secret(request.get_param_value("token"), token)) {
            response.set_header("Set-Cookie",
                                std::string(token_cookie) + "=" + token + "; Path=/; HttpOnly; SameSite=Strict");
            response.set_redirect("/");
            return httplib::Server::HandlerResponse::Handled;
        }
        send_json_error(
            response, 401,
            "this dashboard needs its token: send `Authorization: Bearer TOKEN`, or open /?token=TOKEN once "
            "in the browser");
        return httplib::Server::HandlerResponse::Handled;
    });

    auto asset = [](const std::string& name) {
        return [name](const httplib::Request&, httplib::Response& response) {
            const Asset* found = find_asset(name);
            if (!found) {
                response.status = 404;
                return;
            }
            response.set_content(std::string(found->data), std::string(found->content_type).c_str());
        };
    };
    http_->Get("/", asset("index.html"));
    http_->Get(R"(/assets/([A-Za-z0-9_.-]+))", [](const httplib::Request& request, httplib::Response& response) {
        const Asset* found = find_asset(request.matches[1].str());
        if (!found) return send_json_error(response, 404, "no such asset");
        response.set_content(std::string(found->data), std::string(found->content_type).c_str());
    });
    http_->Get("/healthz", [](const httplib::Request&, httplib::Response& response) {
        response.set_content("ok\n", "text/plain; charset=utf-8");
    });
    http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
        const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
        const EventMetrics events = api_.events().metrics(now);
        const bool carried = api_.events().summary().value("available", true);
        response.set_content(render_metrics(live_.latest(), carried ? &events : nullptr), metrics_content_type);
    });

    http_->Get("/api/session", [this](const httplib::Request&, httplib::Response& response) {
        send_json_body(response, {{"csrf", csrf_}, {"version", CCMULTI_VERSION}});
    });
    http_->Get("/api/status", guarded([this](const httplib::Request&, httplib::Response& response) {
                   send_json_body(response, api_.status());
               }));
    http_->Get("/api/queues", guarded([this](const httplib::Request&, httplib::Response& response) {
                   send_json_body(response, api_.queues());
               }));
    http_->Get(R"(/api/inspect/([a-z_]+))",
               guarded([this](const httplib::Request& request, httplib::Response& response) {
                   const std::string method = request.matches[1].str();
                   if (std::find(reports::inspect_methods.begin(), reports::inspect_methods.end(), method) ==
                       reports::inspect_methods.end())
                       return send_json_error(response, 404, "no inspect method '" + method + "'");
                   send_json_body(response, api_.inspect(method, std::chrono::milliseconds(1000)));
               }));
    http_->Get(R"(/api/result/([A-Za-z0-9_.:-]+))",
               guarded([this](const httplib::Request& request, httplib::Response& response) {
                   send_json_body(response, api_.result(request.matches[1].str()));
               }));
    http_->Get("/api/tasks", guarded([this](const httplib::Request& request, httplib::Response& response) {
                   TaskFilter filter;
                   filter.state = request.get_param_value("state");
                   filter.name = request.get_param_value("name");
                   filter.id = request.get_param_value("id");
                   if (request.has_param("limit")) {
                       try {
                           filter.limit =
                               std::clamp<std::size_t>(std::stoul(request.get_param_value("limit")), 1, 1000);
                       } catch (const std::exception&) {
                           return send_json_error(response, 400, "limit takes a number from 1 to 1000");
                       }
                   }
                   send_json_body(response, api_.tasks(filter));
               }));
    http_->Get("/api/about", [this](const httplib::Request&, httplib::Response& response) {
        send_json_body(response, api_.about());
    });
    http_->Get("/api/points", [this](const httplib::Request&, httplib::Response& response) {
        json points = json::array();
        for (const auto& point : live_.points()) points.push_back(to_json(point));
        send_json_body(response, points);
    });
    // The live chart: the points so far, then each new one as it is made; a comment every 10 s keeps proxies
    // from closing a quiet stream.
    http_->Get("/api/events", [this](const httplib::Request&, httplib::Response& response) {
        if (streams_.fetch_add(1) >= max_event_streams) {
            streams_.fetch_sub(1);
            return send_json_error(response, 503, "too many open event streams; close a dashboard tab");
        }
        auto seen = std::make_shared<std::uint64_t>(0);
        response.set_header("Cache-Control", "no-store");
        response.set_chunked_content_provider(
            "text/event-stream",
            [this, seen](std::size_t, httplib::DataSink& sink) {
                auto points = live_.wait_points(*seen, std::chrono::seconds(10));
                if (live_.stopped()) return false;
                std::string text = points.empty() ? ": keep-alive\n\n" : "";
                for (const auto& point : points) text += "event: point\ndata: " + to_json(point).dump() + "\n\n";
                return sink.write(text.data(), text.size());
            },
            [this](bool) { streams_.fetch_sub(1); });
    });

    // Actions: POST, with the page's CSRF token, from this origin. A page of another site can make the browser
    // POST here, but it can neither read the token nor set the header.
    auto action = [this](auto body) {
        return [this, body](const httplib::Request& request, httplib::Response& response) {
            if (!same_secret(request.get_header_value("X-CSRF-Token"), csrf_))
                return send_json_error(response, 403,
                                       "missing or wrong X-CSRF-Token (reload the page; GET /api/session)");
            if (request.has_header("Origin") &&
                origin_host(request.get_header_value("Origin")) != request.get_header_value("Host"))
                return send_json_error(response, 403, "cross-origin request refused");
            try {
                Outcome outcome = body(request);
                send_json_body(response, outcome.body, outcome.status);
            } catch (const std::exception& e) {
                send_json_error(response, 503, e.what());
            }
        };
    };
    http_->Post(R"(/api/nodes/([^/]+)/restart)", action([this](const httplib::Request& request) {
                    spdlog::info("dashboard: restart {} requested by {}", request.matches[1].str(),
                                 request.remote_addr);
                    return api_.restart_node(request.matches[1].str());
                }));
    http_->Post(R"(/api/nodes/([^/]+)/stop)", action([this](const httplib::Request& request) {
                    spdlog::info("dashboard: stop {} requested by {}", request.matches[1].str(), request.remote_addr);
                    return api_.stop_node(request.matches[1].str());
                }));
    http_->Post(R"(/api/queues/([^/]+)/purge)", action([this](const httplib::Request& request) {
                    spdlog::info("dashboard: purge {} requested by {}", request.matches[1].str(), request.remote_addr);
                    return api_.purge_queue(request.matches[1].str());
                }));
}

}  // namespace ccmulti::dashboard
