#include "pgelect/fencing.hpp"

#include <pqxx/except>
#include <pqxx/result>

#include "lock/names.hpp"
#include "lock/statements.hpp"
#include "pgelect/errors.hpp"

namespace pgelect {

void check_fencing(pqxx::transaction_base& tx, const Leadership& term) {
    const detail::Statements sql(detail::parse_table_name(term.table));
    pqxx::result held;
    try {
        held = tx.exec_params(sql.fence_check, term.group, term.fencing_token, term.identity);
    } catch (const pqxx::transaction_rollback& e) {
        // REPEATABLE READ / SERIALIZABLE: the row changed after the snapshot.
        throw SerializationError("fenced write for group \"" + term.group + "\" on table " +
                                 term.table + ": the lease row changed after this transaction's "
                                 "snapshot (call check_fencing first, then retry): " + e.what());
    }
    if (held.empty()) {
        throw LeadershipLostError("fenced write for group \"" + term.group + "\" on table " +
                                  term.table + " rejected: term " +
                                  std::to_string(term.fencing_token) + " of " + term.identity +
                                  " no longer holds the lease");
    }
}

}  // namespace pgelect
