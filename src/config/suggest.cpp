#include "config/suggest.hpp"

#include <algorithm>
#include <cctype>

namespace pgelect::config_detail {

std::size_t edit_distance(std::string_view a, std::string_view b) {
    // Three rolling rows: the transposition rule looks two rows back.
    std::vector<std::size_t> before(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
                cur[j] = std::min(cur[j], before[j - 2] + 1);
            }
        }
        before.swap(prev);
        prev.swap(cur);
    }
    return prev[b.size()];
}

std::string nearest(std::string_view word, const std::vector<std::string_view>& candidates) {
    // Keys are short, but an attacker-sized "key" must not cost a quadratic table.
    if (word.size() > 256) return {};
    std::string lower(word);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string best;
    std::size_t best_distance = 0;
    for (std::string_view candidate : candidates) {
        const std::size_t d = edit_distance(lower, candidate);
        const std::size_t limit = std::max<std::size_t>(2, candidate.size() / 3);
        if (d <= limit && (best.empty() || d < best_distance)) {
            best = std::string(candidate);
            best_distance = d;
        }
    }
    return best;
}

}  // namespace pgelect::config_detail
