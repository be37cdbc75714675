// Fenced writes: make your own writes conditional on still holding leadership.
#pragma once

#include <pqxx/nontransaction>
#include <pqxx/transaction_base>

#include "pgelect/elector.hpp"

namespace pgelect {

// Inside the caller's own libpqxx transaction on the same database as the
// lock table: locks the lease row FOR SHARE if it still carries this term's
// fencing token and owner, else throws LeadershipLostError.  Until the
// transaction ends, a takeover (which must update that row) waits for it, so
// the writes of the transaction can never interleave with a new leader's.
//
// Isolation: under READ COMMITTED (libpqxx's pqxx::work) it may be called
// anywhere in the transaction.  Under REPEATABLE READ or SERIALIZABLE, call it
// as the transaction's first statement: a snapshot taken before the lease's
// latest renewal cannot lock the renewed row, and check_fencing then throws
// SerializationError (retry the whole transaction; the term may still be
// valid).  While the transaction holds the row, the holder's renewals skip
// that row (its other locks are renewed as usual): keep fenced transactions
// well shorter than the renew deadline, or the term ends on its own deadline.
void check_fencing(pqxx::transaction_base& tx, const Leadership& term);
// A nontransaction commits each statement on its own, so the row lock would be
// gone before the caller's writes: refused at compile time.
void check_fencing(pqxx::nontransaction& tx, const Leadership& term) = delete;

}  // namespace pgelect
