#include "config/env.hpp"

#include <cstdlib>
#include <string>

#include "pgelect/errors.hpp"

namespace pgelect::config_detail {
namespace {

bool is_variable_name(std::string_view name) {
    if (name.empty()) return false;
    auto alpha = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    };
    if (!alpha(name[0])) return false;
    for (char c : name) {
        if (!alpha(c) && !(c >= '0' && c <= '9')) return false;
    }
    return true;
}

// The value of one ${...} reference; `body` is the text between the braces.
std::string resolve(std::string_view body) {
    const auto sep = body.find(":-");
    const std::string_view name = body.substr(0, sep);
    if (!is_variable_name(name)) {
        throw InvalidArgumentError("invalid reference \"${" + std::string(body) +
                                   "}\": expected ${NAME} or ${NAME:-default} with NAME made of "
                                   "letters, digits and _, not starting with a digit");
    }
    const std::string key(name);
    const char* value = std::getenv(key.c_str());
    if (sep != std::string_view::npos) {
        // Like the shell's ${NAME:-default}: an empty value also takes the default.
        if (value == nullptr || *value == '\0') return std::string(body.substr(sep + 2));
        return value;
    }
    if (value == nullptr) {
        throw InvalidArgumentError("environment variable " + key + " is not set (write ${" + key +
                                   ":-default} to give a default)");
    }
    return value;
}

}  // namespace

std::string expand_env(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
        const char c = text[i];
        const char next = i + 1 < text.size() ? text[i + 1] : '\0';
        if (c != '$' || (next != '$' && next != '{')) {
            out += c;
            ++i;
        } else if (next == '$') {
            out += '$';
            i += 2;
        } else {
            const auto close = text.find('}', i + 2);
            if (close == std::string_view::npos) {
                throw InvalidArgumentError(
                    "unterminated \"${\" (write \"$$\" for a literal \"$\")");
            }
            out += resolve(text.substr(i + 2, close - i - 2));
            i = close + 1;
        }
    }
    return out;
}

}  // namespace pgelect::config_detail
