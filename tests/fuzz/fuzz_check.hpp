// A property check for the fuzz targets: a broken property aborts, which
// libFuzzer records as a crash together with the input.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace pgelect_fuzz {

[[noreturn]] inline void violated(const char* property, const std::string& detail) {
    std::fprintf(stderr, "fuzz property violated: %s\n  %s\n", property, detail.c_str());
    std::abort();
}

inline void check(bool holds, const char* property, const std::string& detail = "") {
    if (!holds) violated(property, detail);
}

}  // namespace pgelect_fuzz
