#include "library_sql.hpp"

#include "lock/names.hpp"

namespace bench {

Statements library_sql(const std::string& table) {
    return Statements(pgelect::detail::parse_table_name(table));
}

std::string library_channel(const std::string& table) {
    return pgelect::detail::parse_table_name(table).channel();
}

std::unique_ptr<pqxx::connection> connect_prepared(const Config& cfg, const std::string& table) {
    auto conn = connect(cfg);
    library_sql(table).prepare_on(*conn);
    return conn;
}

std::string pgelect_renew_like(const std::string& table) {
    // The renewal statement: its CTEs, then the UPDATE of this table.
    return "WITH r AS (SELECT * FROM unnest(%UPDATE " + qid(table) + " AS l SET record_version_number%";
}

std::string text_array(const std::vector<std::string>& items) {
    std::string out = "{";
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ',';
        out += '"';
        for (char c : items[i]) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    return out + "}";
}

std::string bigint_array(const std::vector<std::int64_t>& items) {
    std::string out = "{";
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ',';
        out += std::to_string(items[i]);
    }
    return out + "}";
}

}  // namespace bench
