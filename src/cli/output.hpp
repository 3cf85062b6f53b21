// How the CLI talks to people and scripts: colour only on a terminal without NO_COLOR, one-line errors,
// JSON for --json, aligned tables.
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ccmulti::cli {

// True when `stream` is a terminal and neither NO_COLOR, TERM=dumb nor disable_color() says otherwise.
bool use_color(std::FILE* stream);
void disable_color();  // --no-color

enum class Color { none, red, green, yellow, blue, bold, dim };
std::string paint(const std::string& text, Color color, std::FILE* stream = stdout);

void print_error(const std::string& message);  // "ccmulti: error: …" on stderr
void print_warning(const std::string& message);
void print_json(const nlohmann::json& value);  // pretty, on stdout

// Columns padded to the widest cell; the first row is the header (printed dim when coloured).
void print_table(const std::vector<std::vector<std::string>>& rows);
// The same, with a colour per cell (row 0 is the header), applied after padding so columns stay aligned.
void print_table(const std::vector<std::vector<std::string>>& rows,
                 const std::function<Color(std::size_t row, std::size_t column)>& color);

}  // namespace ccmulti::cli
