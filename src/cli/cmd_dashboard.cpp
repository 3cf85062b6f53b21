// dashboard: serves the group's web dashboard, its JSON API and Prometheus /metrics (src/dashboard/) in the
// foreground until SIGINT or SIGTERM. Loopback by default; another address only with a token.
#include <pthread.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <iostream>
#include <thread>

#include "cli/broker_client.hpp"
#include "cli/output.hpp"
#include "dashboard/options.hpp"
#include "dashboard/entry.hpp"
#include "platform/signals.hpp"

namespace ccmulti::cli {

namespace {

struct DashboardOptions {
    std::optional<std::string> bind, token, token_file;
    double interval = 1.0;
    BrokerFlag broker;
};

void dashboard_command(Context& context, const DashboardOptions& options) {
    const auto& configured = context.settings().dashboard;
    std::string bind = options.bind.value_or(configured.bind.value_or(dashboard::default_bind));
    std::optional<std::string> token_file = options.token_file;
    if (!token_file && !options.token && configured.auth_token_file.is_set()) token_file = *configured.auth_token_file;
    auto access = dashboard::access_options(bind, options.token, token_file);

    auto logger = spdlog::stderr_color_mt("dashboard");
    spdlog::set_default_logger(logger);

    // SIGINT and SIGTERM are taken by one thread with sigwait (blocked before any thread starts, so every thread
    // inherits the mask): no handler runs in the middle of the server's work.
    const sigset_t stop_signals = make_sigset({SIGINT, SIGTERM});
    ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    dashboard::Source source{context.dirs().run.path, broker_options(context, options.broker)};
    const std::string run_dir = source.run_dir.string(), broker_url = broker::display_url(source.broker.url);
    auto service = dashboard::bind_foreground(std::move(source), access,
                                              std::chrono::milliseconds(static_cast<long long>(options.interval * 1000)));
    std::thread waiter([&] {
        int sig = 0;
        while (::sigwait(&stop_signals, &sig) != 0) {
        }
        service->stop();
    });
    std::cout << "ccmulti dashboard on " << service->url() << " (run dir " << run_dir << ", broker " << broker_url
              << (access.token ? ", token required" : "") << "); Ctrl-C stops it" << std::endl;
    bool served = service->serve();
    service->stop();
    ::pthread_kill(waiter.native_handle(), SIGTERM);  // wakes the waiter when the server ended by itself
    waiter.join();
    if (!served) throw Error("the dashboard's server stopped unexpectedly");
}

}  // namespace

void add_dashboard_command(CLI::App& app, Context& context) {
    auto options = std::make_shared<DashboardOptions>();
    auto* dashboard = app.add_subcommand(
        "dashboard",
        "Serve the web dashboard, its JSON API and Prometheus /metrics (loopback unless a token guards it)");
    dashboard->add_option("--bind", options->bind,
                          "HOST:PORT to listen on (default 127.0.0.1:5555, or the configuration's [dashboard] bind; "
                          "port 0: any free one)");
    auto* token = dashboard->add_option("--auth-token", options->token,
                                        "Token every request must carry (Authorization: Bearer TOKEN); required "
                                        "to listen on a non-loopback address");
    dashboard->add_option("--auth-token-file", options->token_file, "Read the token from this file (mode 0600)")
        ->excludes(token);
    dashboard->add_option("--interval", options->interval, "Seconds between samples of the live chart and /metrics")
        ->check(seconds_between(0.1, 60))
        ->capture_default_str();
    add_broker_option(*dashboard, options->broker);
    add_result_backend_option(*dashboard, options->broker);
    dashboard->callback([&context, options] { dashboard_command(context, *options); });
}

}  // namespace ccmulti::cli
