#include <iostream>

#include "cli/commands.hpp"
#include "pgelect/lock_client.hpp"

namespace pgelect::cli {

int schema_print(const ConnectionArgs& args) {
    const Connection c = resolve_connection(args);
    std::cout << schema_sql(c.options.table) << std::flush;
    return exit_ok;
}

int schema_apply(const ConnectionArgs& args) {
    const Connection c = resolve_connection(args);
    LockClient client(c.dsn, c.options);
    client.try_create_table();
    say("lock table " + c.options.table + " is ready");
    return exit_ok;
}

}  // namespace pgelect::cli
