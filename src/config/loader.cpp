// load_config / parse_config: the schema of the YAML file (docs/configuration.md).
#include <yaml-cpp/depthguard.h>  // yaml-cpp >= 0.7 stops deep nesting with DeepRecursion
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>

#include "config/reader.hpp"
#include "lock/names.hpp"
#include "pgelect/config.hpp"

namespace pgelect {
namespace {

using config_detail::describe;
using config_detail::DurationRule;
using config_detail::fail_at;
using config_detail::MapReader;
using config_detail::quote;

// A configuration is a few kilobytes; the cap bounds parse time and memory.
constexpr std::size_t kMaxBytes = 1024 * 1024;
constexpr std::size_t kMaxPoolSize = 1000;
const char* const kTooLarge =
    "the configuration is larger than 1 MiB (1048576 bytes); refusing to parse it";

void read_timing(const MapReader& m, LeaseTiming& t) {
    m.read("lease_duration", t.lease_duration, DurationRule::positive);
    m.read("renew_deadline", t.renew_deadline, DurationRule::positive);
    m.read("heartbeat_interval", t.heartbeat_interval, DurationRule::non_negative);
    m.read("retry_interval", t.retry_interval, DurationRule::positive);
}

void check_timing(const std::string& file, const YAML::Mark& mark, const std::string& who,
                  const LeaseTiming& t, const std::string& hint = "") {
    try {
        validate_timing(t);
    } catch (const InvalidArgumentError& e) {
        fail_at(file, mark, who + ": " + e.what() + hint);
    }
}

DatabaseConfig read_database(const MapReader& root) {
    const MapReader m = root.section("database", "database");
    m.allow_only({"dsn", "table", "pool_size", "statement_timeout", "create_table", "pooling",
                  "listen_dsn"});
    DatabaseConfig db;
    m.read("dsn", db.dsn);
    m.read("table", db.table);
    try {
        detail::parse_table_name(db.table);
    } catch (const InvalidArgumentError& e) {
        m.fail("table", e.what());
    }
    m.read_count("pool_size", db.pool_size, kMaxPoolSize);
    m.read("statement_timeout", db.statement_timeout, DurationRule::positive);
    m.read("create_table", db.create_table);
    std::string pooling = "session";
    m.read("pooling", pooling);
    if (pooling == "transaction") {
        db.pooling = Pooling::transaction;
    } else if (pooling != "session") {
        m.fail("pooling", "database.pooling must be \"session\" or \"transaction\" (got \"" +
                              pooling + "\")");
    }
    m.read("listen_dsn", db.listen_dsn);
    return db;
}

// "host:port" or "[v6 address]:port", port 0..65535 (0: any free port).
bool is_listen_address(const std::string& s) {
    const auto colon = s.rfind(':');
    if (colon == std::string::npos || colon == 0) return false;
    const std::string host = s.substr(0, colon);
    const std::string port = s.substr(colon + 1);
    if (port.empty() || port.size() > 5) return false;
    for (char c : port) {
        if (c < '0' || c > '9') return false;
    }
    if (std::stoi(port) > 65535) return false;
    for (char c : host) {
        if (c == ' ' || c == '\t' || c == '/') return false;
    }
    if (host.front() == '[') return host.size() > 2 && host.back() == ']';
    return host.find(':') == std::string::npos;  // a bare IPv6 address needs brackets
}

MetricsConfig read_metrics(const MapReader& root) {
    const MapReader m = root.section("metrics", "metrics");
    m.allow_only({"listen", "path"});
    MetricsConfig metrics;
    m.read("listen", metrics.listen);
    if (!metrics.listen.empty() && !is_listen_address(metrics.listen)) {
        m.fail("listen",
               "expected host:port (e.g. 127.0.0.1:9464, 0.0.0.0:9464, [::1]:9464), or "
               "nothing to disable metrics, got " +
                   quote(metrics.listen));
    }
    m.read("path", metrics.path);
    if (metrics.path.empty() || metrics.path[0] != '/' ||
        metrics.path.find_first_of(" \t\r\n?#") != std::string::npos) {
        m.fail("path", "expected a URL path starting with \"/\" (e.g. /metrics), got " +
                           quote(metrics.path));
    }
    return metrics;
}

// `first_line` maps the names seen so far to the line defining them.
GroupConfig read_group(const std::string& file, const YAML::Node& node, std::size_t index,
                       const Config& config, std::map<std::string, int>& first_line) {
    const std::string at = "groups[" + std::to_string(index) + "]";
    MapReader m(file, node, node.Mark(), at);
    const std::vector<std::string_view> keys{"name",
                                             "data",
                                             "lease_duration",
                                             "renew_deadline",
                                             "heartbeat_interval",
                                             "retry_interval",
                                             "release_on_stop"};
    if (!m.has("name")) {
        m.allow_only(keys);  // a misspelt "name" is better reported as such
        fail_at(file, m.mark(), at + ": missing required key \"name\"");
    }
    GroupConfig group;
    group.timing = config.defaults;
    group.release_on_stop = config.release_on_stop;
    m.read("name", group.name);
    try {
        detail::validate_lock_name(group.name);
    } catch (const InvalidArgumentError& e) {
        m.fail("name", e.what());
    }
    const YAML::Mark name_mark = m.value_mark("name");
    const auto [first, inserted] = first_line.emplace(group.name, name_mark.line + 1);
    if (!inserted) {
        fail_at(file, name_mark,
                "duplicate group name " + quote(group.name) + " (first defined at line " +
                    std::to_string(first->second) + ")");
    }
    m.rename("group " + quote(group.name));
    m.allow_only(keys);
    m.read("data", group.data);
    read_timing(m, group.timing);
    m.read("release_on_stop", group.release_on_stop);
    const bool sets_all = m.has("lease_duration") && m.has("renew_deadline") &&
                          m.has("heartbeat_interval") && m.has("retry_interval");
    check_timing(file, m.mark(), "group " + quote(group.name), group.timing,
                 sets_all ? "" : "; keys the group does not set come from defaults");
    return group;
}

std::vector<GroupConfig> read_groups(const std::string& file, const MapReader& root,
                                     const Config& config) {
    if (!root.has("groups")) {
        fail_at(file, root.mark(),
                "missing required key \"groups\" (at least one group is required)");
    }
    const YAML::Node list = root.value("groups");
    if (!list.IsNull() && !list.IsSequence()) {
        root.fail("groups", "expected a list of groups, got " + describe(list));
    }
    if (list.IsNull() || list.size() == 0) root.fail("groups", "at least one group is required");

    std::vector<GroupConfig> groups;
    std::map<std::string, int> first_line;
    for (std::size_t i = 0; i < list.size(); ++i) {
        groups.push_back(read_group(file, list[i], i, config, first_line));
    }
    return groups;
}

Config build(const std::string& file, const YAML::Node& document) {
    const MapReader root(file, document, YAML::Mark(), "");
    root.allow_only({"database", "identity", "defaults", "groups", "metrics"});
    Config config;
    config.database = read_database(root);
    root.read("identity", config.identity);
    if (!config.identity.empty()) {
        try {
            detail::validate_owner(config.identity);
        } catch (const InvalidArgumentError& e) {
            root.fail("identity", e.what());
        }
    }
    const MapReader defaults = root.section("defaults", "defaults");
    defaults.allow_only({"lease_duration", "renew_deadline", "heartbeat_interval", "retry_interval",
                         "release_on_stop"});
    read_timing(defaults, config.defaults);
    defaults.read("release_on_stop", config.release_on_stop);
    check_timing(file, defaults.mark(), "defaults", config.defaults);
    config.groups = read_groups(file, root, config);
    config.metrics = read_metrics(root);
    try {
        validate_options(config.lock_client_options());  // every rule above; a safety net
    } catch (const InvalidArgumentError& e) {
        fail_at(file, root.mark(), e.what());
    }
    return config;
}

// Records where a document starts; ignores its content.
class DocumentProbe : public YAML::EventHandler {
public:
    YAML::Mark start{};
    void OnDocumentStart(const YAML::Mark& mark) override { start = mark; }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
};

// The single document of `text` (a null node when there is none).  Never
// YAML::LoadAll: on a stray token such as a leading "," yaml-cpp 0.7 returns
// empty documents forever without consuming it (jbeder/yaml-cpp#1040, fixed
// upstream by #1319), which LoadAll collects until memory runs out.  Here at most two
// documents are parsed, and a second one starting where the first did is that bug.
YAML::Node parse_document(const std::string& text, const std::string& source) {
    std::istringstream in(text);
    YAML::Parser parser(in);
    DocumentProbe first;
    if (!parser.HandleNextDocument(first)) return YAML::Node();
    DocumentProbe second;
    if (parser.HandleNextDocument(second)) {
        const int pos = second.start.pos;
        if (pos == first.start.pos && pos >= 0 && static_cast<std::size_t>(pos) < text.size()) {
            fail_at(source, second.start, "invalid YAML: unexpected " + quote(text.substr(pos, 1)));
        }
        fail_at(source, second.start,
                "a second YAML document starts here; only one is allowed (check the "
                "indentation, or remove the \"---\")");
    }
    return YAML::Load(text);
}

std::string read_file(const std::string& path) {
    errno = 0;
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!f) throw ConfigError(path, 0, 0, std::string("cannot read file: ") + std::strerror(errno));
    std::string text;
    char buf[64 * 1024];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) {
        text.append(buf, n);
        if (text.size() > kMaxBytes) throw ConfigError(path, 0, 0, kTooLarge);
    }
    if (std::ferror(f.get())) {
        throw ConfigError(path, 0, 0, std::string("cannot read file: ") + std::strerror(errno));
    }
    return text;
}

}  // namespace

Config parse_config(const std::string& yaml, const std::string& source) {
    try {
        if (yaml.size() > kMaxBytes) throw ConfigError(source, 0, 0, kTooLarge);
        return build(source, parse_document(yaml, source));
    } catch (const ConfigError&) {
        throw;
    } catch (const YAML::DeepRecursion& e) {
        fail_at(source, e.mark, "the document is nested too deeply");
    } catch (const YAML::Exception& e) {
        fail_at(source, e.mark, "invalid YAML: " + e.msg);
    } catch (const std::exception& e) {
        throw ConfigError(source, 0, 0, std::string("cannot load the configuration: ") + e.what());
    } catch (...) {
        throw ConfigError(source, 0, 0, "cannot load the configuration: unknown error");
    }
}

Config load_config(const std::string& path) {
    std::string text;
    try {
        text = read_file(path);
    } catch (const ConfigError&) {
        throw;
    } catch (const std::exception& e) {
        throw ConfigError(path, 0, 0, std::string("cannot read file: ") + e.what());
    }
    return parse_config(text, path);
}

}  // namespace pgelect
