// The human-readable report: a table with PASS/MISS per target, the WAL breakdowns,
// errors, the server settings and, as the very last line, the JSON object.
#pragma once

#include <map>
#include <string>

#include "stats.hpp"

namespace bench {

void print_report(const Results& r, const std::map<std::string, std::string>& settings);

}  // namespace bench
