// Builds against an installed pgelect and checks a call that needs no database.
#include <pgelect/pgelect.hpp>

#include <iostream>

int main() {
    const std::string sql = pgelect::schema_sql("consumer_locks");
    if (sql.find("\"consumer_locks_fence\"") == std::string::npos) {
        std::cerr << "unexpected schema:\n" << sql;
        return 1;
    }
    try {
        pgelect::LockClientOptions o;
        o.table = "bad name";
        pgelect::LockClient client("", o);
        std::cerr << "a bad table name was accepted\n";
        return 1;
    } catch (const pgelect::InvalidArgumentError&) {
    }
    std::cout << "consumer ok\n";
    return 0;
}
