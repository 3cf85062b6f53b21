#include "cli/output.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>

namespace ccmulti::cli {

namespace {
bool color_disabled = false;
}  // namespace

void disable_color() {
    color_disabled = true;
}

bool use_color(std::FILE* stream) {
    if (color_disabled) return false;
    if (const char* no_color = std::getenv("NO_COLOR"); no_color && *no_color) return false;
    if (const char* term = std::getenv("TERM"); term && std::string(term) == "dumb") return false;
    return isatty(fileno(stream)) == 1;
}

std::string paint(const std::string& text, Color color, std::FILE* stream) {
    if (color == Color::none || !use_color(stream)) return text;
    const char* code = "";
    switch (color) {
        case Color::red:
            code = "31";
            break;
        case Color::green:
            code = "32";
            break;
        case Color::yellow:
            code = "33";
            break;
        case Color::blue:
            code = "34";
            break;
        case Color::bold:
            code = "1";
            break;
        case Color::dim:
            code = "2";
            break;
        case Color::none:
            break;
    }
    return std::string("\033[") + code + "m" + text + "\033[0m";
}

void print_error(const std::string& message) {
    std::fflush(stdout);
    std::fprintf(stderr, "ccmulti: %s %s\n", paint("error:", Color::red, stderr).c_str(), message.c_str());
}

void print_warning(const std::string& message) {
    std::fflush(stdout);
    std::fprintf(stderr, "ccmulti: %s %s\n", paint("warning:", Color::yellow, stderr).c_str(), message.c_str());
}

void print_json(const nlohmann::json& value) {
    std::cout << value.dump(2) << '\n' << std::flush;
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
    print_table(rows, [](std::size_t, std::size_t) { return Color::none; });
}

void print_table(const std::vector<std::vector<std::string>>& rows,
                 const std::function<Color(std::size_t row, std::size_t column)>& color) {
    std::vector<std::size_t> widths;
    for (const auto& row : rows) {
        widths.resize(std::max(widths.size(), row.size()));
        for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
    }
    for (std::size_t r = 0; r < rows.size(); ++r) {
        std::string line;
        for (std::size_t i = 0; i < rows[r].size(); ++i) {
            std::string cell = rows[r][i];
            if (i + 1 < rows[r].size()) cell.resize(widths[i] + 2, ' ');
            line += r == 0 ? cell : paint(cell, color(r, i));
        }
        std::cout << (r == 0 ? paint(line, Color::dim) : line) << '\n';
    }
    std::cout << std::flush;
}

}  // namespace ccmulti::cli
