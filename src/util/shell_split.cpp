#include "util/shell_split.hpp"

#include "util/error.hpp"

namespace ccmulti {

std::vector<std::string> shell_split(std::string_view line, std::string_view origin) {
    std::vector<std::string> words;
    std::string word;
    bool in_word = false;
    auto fail = [&](const std::string& what) {
        throw UsageError(what + " in " + std::string(origin) + ": " + std::string(line));
    };
    for (std::size_t i = 0; i < line.size(); ++i) {
        char c = line[i];
        if (c == ' ' || c == '\t' || c == '\n') {
            if (in_word) words.push_back(std::move(word));
            word.clear();
            in_word = false;
        } else if (c == '\'') {
            auto end = line.find('\'', i + 1);
            if (end == std::string_view::npos) fail("unterminated '");
            word.append(line.substr(i + 1, end - i - 1));
            i = end;
            in_word = true;
        } else if (c == '"') {
            in_word = true;
            for (++i;; ++i) {
                if (i >= line.size()) fail("unterminated \"");
                if (line[i] == '"') break;
                if (line[i] == '\\' && i + 1 < line.size() &&
                    std::string_view("\"\\$`\n").find(line[i + 1]) != std::string_view::npos)
                    ++i;
                word += line[i];
            }
        } else if (c == '\\') {
            if (i + 1 >= line.size()) fail("trailing backslash");
            word += line[++i];
            in_word = true;
        } else {
            word += c;
            in_word = true;
        }
    }
    if (in_word) words.push_back(std::move(word));
    return words;
}

}  // namespace ccmulti
