// The dashboard, the alert rules and the docs use only metric names that
// pgelect exports (and the dashboard and docs cover every one of them).
#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "pgelect/metrics.hpp"

namespace pgelect::test {
namespace {

std::string read(const std::string& relative) {
    std::ifstream in(std::string(PGELECT_SOURCE_DIR) + "/" + relative);
    EXPECT_TRUE(in.good()) << "cannot read " << relative;
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// Series names a scrape of pgelect can contain.
std::set<std::string> exported_series() {
    std::set<std::string> out;
    for (const auto& d : metric_descriptions()) {
        const std::string name(d.name);
        out.insert(name);
        if (d.kind == MetricKind::histogram)
            for (auto suffix : {"_bucket", "_sum", "_count"}) out.insert(name + suffix);
    }
    return out;
}

std::set<std::string> names_in(const std::string& text) {
    static const std::regex name(R"(\bpgelect_[a-z0-9_]+)");
    std::set<std::string> out;
    for (std::sregex_iterator it(text.begin(), text.end(), name), end; it != end; ++it)
        out.insert(it->str());
    return out;
}

std::vector<std::string> unknown_names(const std::string& text) {
    const auto known = exported_series();
    std::vector<std::string> out;
    for (const auto& n : names_in(text))
        if (!known.count(n)) out.push_back(n);
    return out;
}

std::vector<std::string> json_exprs(const std::string& json) {
    static const std::regex expr(R"re("expr"\s*:\s*"((?:[^"\\]|\\.)*)")re");
    std::vector<std::string> out;
    for (std::sregex_iterator it(json.begin(), json.end(), expr), end; it != end; ++it)
        out.push_back((*it)[1].str());
    return out;
}

// A strict JSON syntax check (RFC 8259 grammar, no semantic checks).
class JsonChecker {
public:
    explicit JsonChecker(const std::string& s) : s_(s) {}
    bool valid() {
        skip();
        if (!value()) return false;
        skip();
        return i_ == s_.size();
    }
    std::size_t where() const { return i_; }

private:
    void skip() {
        while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
    }
    bool eat(char c) {
        skip();
        if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
        return false;
    }
    bool literal(const char* word) {
        const std::string w(word);
        if (s_.compare(i_, w.size(), w) != 0) return false;
        i_ += w.size();
        return true;
    }
    bool string() {
        if (!eat('"')) return false;
        while (i_ < s_.size() && s_[i_] != '"') {
            if (static_cast<unsigned char>(s_[i_]) < 0x20) return false;
            if (s_[i_] == '\\') ++i_;
            ++i_;
        }
        return i_ < s_.size() && s_[i_++] == '"';
    }
    bool number() {
        static const std::regex num(R"(-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?)");
        std::smatch m;
        const std::string rest = s_.substr(i_, 40);
        if (!std::regex_search(rest, m, num, std::regex_constants::match_continuous)) return false;
        i_ += static_cast<std::size_t>(m.length(0));
        return true;
    }
    bool value() {
        skip();
        if (i_ >= s_.size()) return false;
        const char c = s_[i_];
        if (c == '{') return sequence('}', true);
        if (c == '[') return sequence(']', false);
        if (c == '"') return string();
        if (c == 't') return literal("true");
        if (c == 'f') return literal("false");
        if (c == 'n') return literal("null");
        return number();
    }
    bool sequence(char close, bool object) {
        ++i_;
        if (eat(close)) return true;
        do {
            if (object && !(string() && eat(':'))) return false;
            if (!value()) return false;
        } while (eat(','));
        return eat(close);
    }
    const std::string& s_;
    std::size_t i_ = 0;
};

TEST(MetricNamesTest, DescriptionsFollowTheConventions) {
    std::set<std::string> seen;
    for (const auto& d : metric_descriptions()) {
        const std::string name(d.name);
        EXPECT_TRUE(seen.insert(name).second) << "duplicate " << name;
        EXPECT_TRUE(std::regex_match(name, std::regex("pgelect_[a-z_]+"))) << name;
        const bool total = name.ends_with("_total");
        EXPECT_EQ(total, d.kind == MetricKind::counter) << name << ": _total is for counters only";
        EXPECT_TRUE(std::string(d.labels).starts_with("group")) << name;
        EXPECT_FALSE(d.help.empty()) << name;
    }
    EXPECT_EQ(seen.size(), 13u);
}

TEST(MetricNamesTest, TheCheckerCatchesUnknownNames) {
    EXPECT_EQ(unknown_names("sum(pgelect_is_leader) + pgelect_renewal_duration_seconds_bucket"),
              std::vector<std::string>{});
    EXPECT_EQ(unknown_names("sum by (group) (pgelect_is_leaders)"),
              std::vector<std::string>{"pgelect_is_leaders"});
    EXPECT_EQ(unknown_names("pgelect_is_leader_bucket"),
              std::vector<std::string>{"pgelect_is_leader_bucket"});  // not a histogram
    EXPECT_FALSE(JsonChecker(R"({"a": [1, 2,]})").valid());
    EXPECT_TRUE(JsonChecker(R"({"a": [1, -2.5e3, "x\"y", true, null, {}]})").valid());
}

TEST(MetricNamesTest, DashboardIsValidJsonAndUsesOnlyExportedMetrics) {
    const std::string json = read("docs/grafana/pgelect.json");
    JsonChecker checker(json);
    EXPECT_TRUE(checker.valid()) << "docs/grafana/pgelect.json: syntax error near byte " << checker.where();
    const auto exprs = json_exprs(json);
    EXPECT_GE(exprs.size(), 7u) << "one query per panel at least";
    for (const auto& e : exprs) {
        EXPECT_FALSE(names_in(e).empty()) << "expr without a pgelect metric: " << e;
        EXPECT_EQ(unknown_names(e), std::vector<std::string>{}) << "in expr: " << e;
    }
    // Anywhere else in the file too (template variables, links).
    EXPECT_EQ(unknown_names(json), std::vector<std::string>{});
    // Every exported family has a panel.
    std::string all;
    for (const auto& e : exprs) all += e + "\n";
    for (const auto& d : metric_descriptions())
        EXPECT_NE(all.find(std::string(d.name)), std::string::npos) << d.name << " has no panel";
}

TEST(MetricNamesTest, AlertRulesAndTheirTestsUseOnlyExportedMetrics) {
    for (auto file : {"docs/prometheus/alerts.yml", "docs/prometheus/alerts_test.yml"}) {
        const std::string text = read(file);
        EXPECT_FALSE(names_in(text).empty()) << file;
        EXPECT_EQ(unknown_names(text), std::vector<std::string>{}) << file;
    }
}

TEST(MetricNamesTest, DocsDescribeExactlyTheExportedMetrics) {
    const std::string doc = read("docs/metrics.md");
    // The page also names the test executables.
    const std::set<std::string> not_metrics{"pgelect_metrics_unit_tests", "pgelect_metrics_integration_tests",
                                            "pgelect_prometheus_server_tests"};
    for (const auto& n : unknown_names(doc))
        EXPECT_TRUE(not_metrics.count(n)) << n << " in docs/metrics.md is not an exported metric";
    for (const auto& d : metric_descriptions())
        EXPECT_NE(doc.find("`" + std::string(d.name) + "`"), std::string::npos)
            << d.name << " is not documented in docs/metrics.md";
}

}  // namespace
}  // namespace pgelect::test
