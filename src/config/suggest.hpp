// "Did you mean" suggestions for misspelt configuration keys.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace pgelect::config_detail {

// Optimal string alignment distance: insertions, deletions, substitutions and
// transpositions of adjacent characters each count one.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word` (ignoring case) if it is close enough to be a
// likely typo (at most 2 edits, or a third of the candidate's length); "" otherwise.
std::string nearest(std::string_view word, const std::vector<std::string_view>& candidates);

}  // namespace pgelect::config_detail
