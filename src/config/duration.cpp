// parse_duration: "250ms", "15s", "1.5m", "2h", "1m30s".
#include <cstdint>
#include <string>

#include "pgelect/config.hpp"

namespace pgelect {
namespace {

// Longer durations are refused: nobody means them, and lease arithmetic
// (deadlines on the steady clock, heartbeat * 2) must not overflow.
constexpr std::int64_t kMaxMs = 8760LL * 3600 * 1000;  // 8760h, one year

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

std::int64_t unit_ms(std::string_view unit) {
    if (unit == "ms") return 1;
    if (unit == "s") return 1000;
    if (unit == "m") return 60 * 1000;
    if (unit == "h") return 3600 * 1000;
    return 0;
}

}  // namespace

Duration parse_duration(std::string_view text) {
    const std::string quoted = "invalid duration \"" + std::string(text.substr(0, 64)) +
                               (text.size() > 64 ? "...\"" : "\"");
    auto fail = [&](const std::string& problem) -> Duration {
        throw InvalidArgumentError(quoted + ": " + problem);
    };
    if (text.empty()) return fail("it is empty");
    if (text[0] == '-') return fail("it is negative");
    if (text == "0") return Duration::zero();  // the one unitless value, as in Go

    const std::string syntax =
        "expected a number followed by a unit (ms, s, m or h), e.g. 250ms, 15s, 1.5m, 2h";
    std::int64_t total = 0;
    std::size_t i = 0;
    while (i < text.size()) {
        // number: digits [. digits] | . digits
        std::int64_t whole = 0;
        std::size_t start = i;
        while (i < text.size() && is_digit(text[i])) {
            whole = whole * 10 + (text[i] - '0');
            if (whole > kMaxMs) return fail("too large (at most 8760h)");
            ++i;
        }
        const bool has_whole = i > start;
        std::string fraction;
        if (i < text.size() && text[i] == '.') {
            start = ++i;
            while (i < text.size() && is_digit(text[i])) fraction += text[i++];
            if (i == start) return fail(syntax);
        }
        if (!has_whole && fraction.empty()) return fail(syntax);
        // unit: a run of letters
        start = i;
        while (i < text.size() &&
               ((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= 'A' && text[i] <= 'Z') ||
                static_cast<unsigned char>(text[i]) >= 0x80)) {
            ++i;
        }
        const std::string_view unit = text.substr(start, i - start);
        if (unit.empty()) return fail(i == text.size() ? "missing unit (ms, s, m or h)" : syntax);
        const std::int64_t scale = unit_ms(unit);
        if (scale == 0) {
            return fail("unknown unit \"" + std::string(unit.substr(0, 16)) +
                        "\" (use ms, s, m or h)");
        }

        while (!fraction.empty() && fraction.back() == '0') fraction.pop_back();
        // With trailing zeros gone, more than 9 fractional digits never make whole
        // milliseconds (3.6e6 ms, the largest unit, is 2^8 * 3^2 * 5^5).
        if (fraction.size() > 9) return fail("not a whole number of milliseconds");
        std::int64_t numerator = fraction.empty() ? 0 : std::stoll(fraction);
        std::int64_t denominator = 1;
        for (std::size_t k = 0; k < fraction.size(); ++k) denominator *= 10;
        // numerator < 1e9 and scale <= 3.6e6: the product fits in 64 bits.
        if (numerator * scale % denominator != 0) return fail("not a whole number of milliseconds");
        if (whole > kMaxMs / scale) return fail("too large (at most 8760h)");
        total += whole * scale + numerator * scale / denominator;
        if (total > kMaxMs) return fail("too large (at most 8760h)");
    }
    return Duration(total);
}

}  // namespace pgelect
