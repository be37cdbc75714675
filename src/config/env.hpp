// ${VAR} expansion of configuration values.
#pragma once

#include <string>
#include <string_view>

namespace pgelect::config_detail {

// Expands, from the process environment:
//   ${NAME}            the variable's value; an error if it is not set
//   ${NAME:-default}   the value, or `default` when the variable is unset or empty
//   $$                 a literal "$"
// NAME is [A-Za-z_][A-Za-z0-9_]*; `default` is literal text up to the first "}".
// A "$" followed by anything else is kept as it is.  Substituted values are not
// expanded again.  Throws InvalidArgumentError naming the variable or the
// malformed reference.
std::string expand_env(std::string_view text);

}  // namespace pgelect::config_detail
