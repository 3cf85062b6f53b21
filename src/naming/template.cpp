#include "naming/template.hpp"

#include "util/error.hpp"

namespace ccmulti::naming {

namespace {

// Python's `\w`, which Celery's `%(\w)` pattern uses; bytes of multi-byte UTF-8 characters count as word
// characters there too.
bool is_word_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
}

}  // namespace

std::string expand(std::string_view text, const TemplateKeys& keys, std::string_view origin) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c != '%' || i + 1 == text.size()) {
            out += c;
            continue;
        }
        char key = text[i + 1];
        if (key == '%') {
            out += '%';
            ++i;
        } else if (key == 'i' || key == 'I') {
            out += '%';
            out += key;
            ++i;
        } else if (auto it = keys.find(key); it != keys.end()) {
            out += it->second;
            ++i;
        } else if (is_word_char(static_cast<unsigned char>(key))) {
            throw UsageError("unknown template %" + std::string(1, key) + " in '" + std::string(text) + "' (from " +
                             std::string(origin) + "); known: %n %N %h %p %d %i %I, and %% for a literal %");
        } else {
            out += c;  // "%-" and the like stay as written, as in Celery
        }
    }
    return out;
}

TemplateKeys node_keys(std::string_view shortname, std::string_view host) {
    std::string full = std::string(shortname) + "@" + std::string(host);
    return {{'n', std::string(shortname)}, {'N', std::string(shortname)}, {'h', full}, {'p', full},
            {'d', std::string(host)}};
}

TemplateKeys host_keys(std::string_view machine_hostname) {
    auto dot = machine_hostname.find('.');
    std::string first_label(machine_hostname.substr(0, dot));
    std::string domain = dot == std::string_view::npos ? "" : std::string(machine_hostname.substr(dot + 1));
    return {{'h', std::string(machine_hostname)}, {'n', first_label}, {'d', domain}};
}

}  // namespace ccmulti::naming
