#include "config/reader.hpp"

#include <map>

#include "config/env.hpp"
#include "config/suggest.hpp"

namespace pgelect::config_detail {

void fail_at(const std::string& file, const YAML::Mark& mark, const std::string& problem) {
    if (mark.is_null()) throw ConfigError(file, 0, 0, problem);
    throw ConfigError(file, mark.line + 1, mark.column + 1, problem);
}

std::string quote(const std::string& s) {
    return "\"" + (s.size() > 64 ? s.substr(0, 64) + "..." : s) + "\"";
}

std::string describe(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Sequence:
            return "a list";
        case YAML::NodeType::Map:
            return "a map";
        case YAML::NodeType::Scalar:
            return quote(node.Scalar());
        default:
            return "nothing";
    }
}

MapReader::MapReader(std::string file, const YAML::Node& node, const YAML::Mark& fallback,
                     std::string name)
    : file_(std::move(file)), mark_(fallback), name_(std::move(name)) {
    if (!node.IsDefined() || node.IsNull()) return;
    mark_ = node.Mark();
    if (!node.IsMap()) {
        fail_at(file_, mark_,
                name_.empty() ? "expected a map at the top level, got " + describe(node)
                              : name_ + ": expected a map, got " + describe(node));
    }
    std::map<std::string, int, std::less<>> lines;
    // Copies: yaml-cpp's iterator hands out temporaries; Nodes are cheap handles.
    for (const auto& pair : node) {
        const YAML::Node key = pair.first;
        if (!key.IsScalar()) {
            fail_at(file_, key.Mark(),
                    "keys must be plain names, got " + describe(key) +
                        (name_.empty() ? " at the top level" : " in " + name_));
        }
        const auto [first, inserted] = lines.emplace(key.Scalar(), key.Mark().line + 1);
        if (!inserted) {
            fail_at(file_, key.Mark(),
                    "duplicate key " + quote(key.Scalar()) +
                        (name_.empty() ? " at the top level" : " in " + name_) +
                        " (first at line " + std::to_string(first->second) + ")");
        }
        entries_.push_back(Entry{key.Scalar(), key, pair.second});
    }
}

void MapReader::allow_only(const std::vector<std::string_view>& valid) const {
    for (const Entry& e : entries_) {
        bool known = false;
        for (std::string_view k : valid) known = known || k == e.key;
        if (known) continue;
        std::string problem =
            "unknown key " + quote(e.key) + (name_.empty() ? " at the top level" : " in " + name_);
        const std::string suggestion = nearest(e.key, valid);
        if (!suggestion.empty()) {
            problem += "; did you mean \"" + suggestion + "\"?";
        } else {
            problem += " (valid keys:";
            for (std::size_t i = 0; i < valid.size(); ++i) {
                problem += (i == 0 ? " " : ", ") + std::string(valid[i]);
            }
            problem += ")";
        }
        fail_at(file_, e.key_node.Mark(), problem);
    }
}

const MapReader::Entry* MapReader::find(std::string_view key) const {
    for (const Entry& e : entries_) {
        if (e.key == key) return &e;
    }
    return nullptr;
}

YAML::Node MapReader::value(std::string_view key) const {
    const Entry* e = find(key);
    return e ? e->value : YAML::Node(YAML::NodeType::Null);
}

YAML::Mark MapReader::value_mark(std::string_view key) const {
    const Entry* e = find(key);
    if (!e) return mark_;
    // yaml-cpp places an empty value at the next token, possibly lines below.
    return e->value.IsNull() ? e->key_node.Mark() : e->value.Mark();
}

MapReader MapReader::section(std::string_view key, std::string name) const {
    const Entry* e = find(key);
    if (!e) return MapReader(file_, YAML::Node(), mark_, std::move(name));
    return MapReader(file_, e->value, e->key_node.Mark(), std::move(name));
}

std::string MapReader::label(std::string_view key) const {
    return name_.empty() ? std::string(key) : std::string(key) + " in " + name_;
}

void MapReader::fail(std::string_view key, const std::string& problem) const {
    fail_at(file_, value_mark(key), label(key) + ": " + problem);
}

std::string MapReader::text(const Entry& entry, const char* expected) const {
    if (entry.value.IsNull()) return {};
    if (!entry.value.IsScalar()) {
        fail(entry.key, std::string("expected ") + expected + ", got " + describe(entry.value));
    }
    try {
        return expand_env(entry.value.Scalar());
    } catch (const InvalidArgumentError& e) {
        fail(entry.key, e.what());
    }
}

void MapReader::read(std::string_view key, std::string& out) const {
    if (const Entry* e = find(key)) out = text(*e, "a string");
}

void MapReader::read(std::string_view key, bool& out) const {
    const Entry* e = find(key);
    if (!e) return;
    std::string s = text(*e, "true or false");
    for (char& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    if (s == "true" || s == "yes" || s == "on") {
        out = true;
    } else if (s == "false" || s == "no" || s == "off") {
        out = false;
    } else {
        fail(key, "expected true or false, got " +
                      (e->value.IsNull() ? std::string("nothing") : quote(s)));
    }
}

void MapReader::read_count(std::string_view key, std::size_t& out, std::size_t max) const {
    const Entry* e = find(key);
    if (!e) return;
    const std::string expected = "an integer from 1 to " + std::to_string(max);
    const std::string s = text(*e, expected.c_str());
    std::size_t n = 0;
    bool ok = !s.empty();
    for (char c : s) {
        ok = ok && c >= '0' && c <= '9' && n <= max;
        if (ok) n = n * 10 + static_cast<std::size_t>(c - '0');
    }
    if (!ok || n < 1 || n > max) {
        fail(key, "expected " + expected + ", got " +
                      (e->value.IsNull() ? std::string("nothing") : quote(s)));
    }
    out = n;
}

void MapReader::read(std::string_view key, Duration& out, DurationRule rule) const {
    const Entry* e = find(key);
    if (!e) return;
    const char* expected = "a duration such as 250ms, 15s or 2m";
    const std::string s = text(*e, expected);
    if (e->value.IsNull()) fail(key, std::string("expected ") + expected + ", got nothing");
    Duration d;
    try {
        d = parse_duration(s);
    } catch (const InvalidArgumentError& err) {
        fail(key, err.what());
    }
    if (rule == DurationRule::positive && d == Duration::zero()) {
        fail(key, "must be positive, got " + quote(s));
    }
    out = d;
}

}  // namespace pgelect::config_detail
