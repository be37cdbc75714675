#include "pgelect/errors.hpp"

namespace pgelect {

std::string_view to_string(ErrorKind kind) noexcept {
    switch (kind) {
        case ErrorKind::not_acquired: return "not_acquired";
        case ErrorKind::already_released: return "already_released";
        case ErrorKind::not_found: return "not_found";
        case ErrorKind::unavailable: return "unavailable";
        case ErrorKind::failed_precondition: return "failed_precondition";
        case ErrorKind::serialization: return "serialization";
        case ErrorKind::invalid_argument: return "invalid_argument";
        case ErrorKind::leadership_lost: return "leadership_lost";
        case ErrorKind::other: return "other";
    }
    return "other";
}

}  // namespace pgelect
