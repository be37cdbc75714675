// Builds a LockClient over any LockStore and Clock: the in-memory store and
// the fake clock of the unit tests, or a simulation.  Not part of the public API.
#pragma once

#include <memory>

#include "lock/clock.hpp"
#include "lock/store.hpp"
#include "pgelect/lock_client.hpp"
#include "pgelect/options.hpp"

namespace pgelect::detail {

struct ClientFactory {
    // Throws InvalidArgumentError for bad options.
    static std::unique_ptr<LockClient> make(std::shared_ptr<LockStore> store,
                                            std::shared_ptr<Clock> clock,
                                            LockClientOptions options = {});
};

}  // namespace pgelect::detail
