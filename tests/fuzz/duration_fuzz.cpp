// parse_duration on arbitrary bytes, checked against a reference reading of
// the documented grammar: "0", or one or more <number><unit> with number
// digits[.digits] or .digits and unit ms, s, m or h ("1m30s", "1.5s"); the total
// is a whole number of milliseconds, at most 8760h.  Contract: it accepts
// exactly those, returns their value (never negative), and otherwise throws
// InvalidArgumentError and nothing else.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "pgelect/config.hpp"

using pgelect_fuzz::check;
using pgelect_fuzz::violated;

namespace {

using Int = __int128;
constexpr Int kMaxMs = Int{8760} * 3600 * 1000;
constexpr Int kHuge = Int{1} << 100;  // saturation point: far above any accepted value

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_unit_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           static_cast<unsigned char>(c) >= 0x80;
}

// The value in milliseconds, or nothing when the grammar or a limit rejects it.
std::optional<Int> reference(std::string_view s) {
    if (s == "0") return 0;
    if (s.empty()) return std::nullopt;
    Int total = 0;
    std::size_t i = 0;
    while (i < s.size()) {
        Int whole = 0;
        const std::size_t start = i;
        for (; i < s.size() && is_digit(s[i]); ++i) {
            whole = whole > kHuge ? kHuge : whole * 10 + (s[i] - '0');
        }
        std::string fraction;
        if (i < s.size() && s[i] == '.') {
            for (++i; i < s.size() && is_digit(s[i]); ++i) fraction += s[i];
            if (fraction.empty()) return std::nullopt;
        }
        if (i == start) return std::nullopt;
        const std::size_t unit_start = i;
        while (i < s.size() && is_unit_char(s[i])) ++i;
        const std::string_view unit = s.substr(unit_start, i - unit_start);
        Int scale = 0;
        if (unit == "ms") scale = 1;
        if (unit == "s") scale = 1000;
        if (unit == "m") scale = 60 * 1000;
        if (unit == "h") scale = 3600 * 1000;
        if (scale == 0) return std::nullopt;

        while (!fraction.empty() && fraction.back() == '0') fraction.pop_back();
        // 10^k divides f * 2^8 * 3^2 * 5^5 (f not a multiple of 10) only for k <= 8.
        if (fraction.size() > 18) return std::nullopt;
        Int numerator = 0;
        Int denominator = 1;
        for (char c : fraction) {
            numerator = numerator * 10 + (c - '0');
            denominator *= 10;
        }
        if (numerator * scale % denominator != 0) return std::nullopt;
        total += whole * scale + numerator * scale / denominator;
        if (total > kMaxMs) return std::nullopt;
    }
    return total;
}

std::string show(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += static_cast<char>(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        }
    }
    return "\"" + out + "\"";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // A view of libFuzzer's own buffer: a read past its end is an ASan report.
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const std::optional<Int> expected = reference(text);
    std::optional<pgelect::Duration> got;
    try {
        got = pgelect::parse_duration(text);
    } catch (const pgelect::InvalidArgumentError& e) {
        check(std::string_view(e.what()).starts_with("invalid duration \""),
              "the error names the duration", e.what());
    } catch (const std::exception& e) {
        violated("parse_duration throws only InvalidArgumentError", show(text) + ": " + e.what());
    } catch (...) {
        violated("parse_duration throws only InvalidArgumentError", show(text));
    }
    if (!got) {
        if (expected) {
            violated(
                "a valid duration is accepted",
                show(text) + " is " + std::to_string(static_cast<long long>(*expected)) + "ms");
        }
        return 0;
    }
    const long long ms = got->count();
    check(ms >= 0, "an accepted duration is not negative", show(text));
    if (!expected) {
        violated("an invalid duration is refused",
                 show(text) + " gave " + std::to_string(ms) + "ms");
    }
    check(*expected == ms, "the value is that of the text",
          show(text) + " gave " + std::to_string(ms) + "ms, expected " +
              std::to_string(static_cast<long long>(*expected)) + "ms");
    // The value written back in milliseconds reads the same.
    check(pgelect::parse_duration(std::to_string(ms) + "ms") == *got, "<n>ms round-trips",
          std::to_string(ms) + "ms");
    return 0;
}
