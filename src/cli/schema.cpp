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

int schema_bump_epoch(const ConnectionArgs& args, std::int64_t above) {
    const Connection c = resolve_connection(args);
    LockClient client(c.dsn, c.options);
    const std::int64_t floor = client.bump_epoch(above);
    say("lock table " + c.options.table + ": the next fencing tokens exceed " +
        std::to_string(floor));
    return exit_ok;
}

}  // namespace pgelect::cli
