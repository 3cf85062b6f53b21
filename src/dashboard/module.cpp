// The dashboard as the module ccmulti-dashboard.so (dashboard/entry.hpp): its entry point.
#include "dashboard/entry.hpp"
#include "dashboard/service.hpp"
#include "platform/module.hpp"

CCMULTI_MODULE_VERSION;

namespace ccmulti::dashboard {

namespace {

class ServiceInForeground final : public Foreground {
public:
    ServiceInForeground(Source source, AccessOptions access, std::chrono::milliseconds interval)
        : service_(std::move(source), std::move(access), interval) {}
    std::string url() const override { return service_.url(); }
    bool serve() override { return service_.serve(); }
    void stop() override { service_.stop(); }

private:
    Service service_;
};

class ServiceInBackground final : public Served {
public:
    ServiceInBackground(Source source, AccessOptions access, std::chrono::milliseconds interval)
        : background_(std::move(source), std::move(access), interval) {}
    std::string url() const override { return background_.url(); }
    void stop() override { background_.stop(); }

private:
    Background background_;
};

std::unique_ptr<Foreground> foreground(Source source, AccessOptions access, std::chrono::milliseconds interval) {
    return std::make_unique<ServiceInForeground>(std::move(source), std::move(access), interval);
}

std::unique_ptr<Served> background(Source source, AccessOptions access, std::chrono::milliseconds interval) {
    return std::make_unique<ServiceInBackground>(std::move(source), std::move(access), interval);
}

constexpr Module module{foreground, background};

}  // namespace

}  // namespace ccmulti::dashboard

extern "C" const ccmulti::dashboard::Module* ccmulti_dashboard_module() {
    return &ccmulti::dashboard::module;
}
