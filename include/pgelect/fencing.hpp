// Fenced writes: make your own writes conditional on still holding leadership.
#pragma once

#include <pqxx/transaction_base>

#include "pgelect/elector.hpp"

namespace pgelect {

// Inside the caller's own libpqxx transaction on the same database as the
// lock table: locks the lease row FOR SHARE if it still carries this term's
// fencing token and owner, else throws LeadershipLostError.  Until the
// transaction ends, a takeover (which must update that row) waits for it, so
// the writes of the transaction can never interleave with a new leader's.
// Keep such transactions shorter than the renew deadline: the leader's own
// renewals wait for them too.
void check_fencing(pqxx::transaction_base& tx, const Leadership& term);

}  // namespace pgelect
