// parse_config on arbitrary text.  Contract (pgelect/config.hpp): it returns a
// configuration that passes every validation rule, or throws ConfigError naming
// the source; it throws nothing else and neither crashes nor hangs.
#include <cstddef>
#include <cstdint>
#include <exception>
#include <set>
#include <string>

#include "fuzz_check.hpp"
#include "lock/names.hpp"
#include "pgelect/config.hpp"

using pgelect_fuzz::check;
using pgelect_fuzz::violated;

namespace {

const std::string kSource = "fuzz.yaml";

void check_accepted(const pgelect::Config& config) {
    check(!config.groups.empty(), "an accepted configuration has a group");
    std::set<std::string> names;
    for (const pgelect::GroupConfig& group : config.groups) {
        try {
            pgelect::detail::validate_lock_name(group.name);
            pgelect::validate_timing(group.timing);
        } catch (const pgelect::InvalidArgumentError& e) {
            violated("an accepted group is valid", e.what());
        }
        check(names.insert(group.name).second, "group names are unique", group.name);
    }
    try {
        pgelect::validate_options(config.lock_client_options());
    } catch (const pgelect::InvalidArgumentError& e) {
        violated("the options of an accepted configuration are valid", e.what());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string yaml(reinterpret_cast<const char*>(data), size);
    try {
        check_accepted(pgelect::parse_config(yaml, kSource));
    } catch (const pgelect::ConfigError& e) {
        const std::string what = e.what();
        check(what.rfind(kSource + ":", 0) == 0, "a ConfigError starts with the source", what);
        check(e.file() == kSource && e.line() >= 0 && e.column() >= 0,
              "a ConfigError carries the source and a position", what);
        check(e.kind() == pgelect::ErrorKind::invalid_argument,
              "a ConfigError is an invalid_argument error", what);
    } catch (const std::exception& e) {
        violated("parse_config throws only ConfigError", e.what());
    } catch (...) {
        violated("parse_config throws only ConfigError", "a non-std::exception escaped");
    }
    return 0;
}
