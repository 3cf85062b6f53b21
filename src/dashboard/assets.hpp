// The dashboard's pages, styles and scripts, compiled into the binary (cmake/EmbedAssets.cmake generates the
// definition from src/dashboard/assets/): machines running workers often have no internet and no web root, so
// the dashboard needs neither a CDN nor files next to the binary.
#pragma once

#include <span>
#include <string_view>

namespace ccmulti::dashboard {

struct Asset {
    std::string_view name;          // "index.html", "app.js"
    std::string_view content_type;  // "text/html; charset=utf-8"
    std::string_view data;
};

std::span<const Asset> embedded_assets();

// The asset called `name`, or nullptr.
inline const Asset* find_asset(std::string_view name) {
    for (const auto& asset : embedded_assets())
        if (asset.name == name) return &asset;
    return nullptr;
}

}  // namespace ccmulti::dashboard
