// Position-aware, typed reading of the YAML maps of a configuration file.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "pgelect/config.hpp"

namespace pgelect::config_detail {

// Throws ConfigError at `mark` (yaml-cpp marks are 0-based; a null mark is 0:0).
[[noreturn]] void fail_at(const std::string& file, const YAML::Mark& mark,
                          const std::string& problem);

// "\"text\"", cut after 64 bytes.
std::string quote(const std::string& s);

// What a node holds, for "expected ..., got <description>": "a list", "a map",
// "nothing" or the quoted scalar.
std::string describe(const YAML::Node& node);

enum class DurationRule { positive, non_negative };

// One map of the configuration (the top level, a section or a group).  On
// construction it checks that the node is a map (or empty) whose keys are
// scalars, each present once.  Values are read with ${VAR} expanded, and every
// problem becomes a ConfigError at the offending node, naming the key and the
// map.  Used by one loader on one thread.
class MapReader {
public:
    // `name` is the map in messages ("database", "groups[2]", "" for the top
    // level); `fallback` is the position used when the map is absent.
    MapReader(std::string file, const YAML::Node& node, const YAML::Mark& fallback,
              std::string name);

    // Renames the map in later messages (a group, once its name is known).
    void rename(std::string name) { name_ = std::move(name); }
    // Throws for the first key (in document order) not in `keys`, suggesting the nearest.
    void allow_only(const std::vector<std::string_view>& keys) const;

    bool has(std::string_view key) const { return find(key) != nullptr; }
    // The value of `key`; a null node when absent.
    YAML::Node value(std::string_view key) const;
    // Where errors about the value of `key` point (the key itself when the value is empty).
    YAML::Mark value_mark(std::string_view key) const;
    // Position of the map (the fallback when it is absent or empty).
    const YAML::Mark& mark() const { return mark_; }

    // The nested map under `key` (absent or empty: an empty map).
    MapReader section(std::string_view key, std::string name) const;

    // Each read leaves `out` unchanged when the key is absent.
    void read(std::string_view key, std::string& out) const;  // empty value: ""
    void read(std::string_view key, bool& out) const;
    void read_count(std::string_view key, std::size_t& out, std::size_t max) const;
    void read(std::string_view key, Duration& out, DurationRule rule) const;

    // "pool_size in database", or "identity" at the top level.
    std::string label(std::string_view key) const;
    [[noreturn]] void fail(std::string_view key, const std::string& problem) const;

private:
    struct Entry {
        std::string key;
        YAML::Node key_node;
        YAML::Node value;
    };
    const Entry* find(std::string_view key) const;
    // The env-expanded text of a scalar value ("" when empty); `expected` names the type.
    std::string text(const Entry& entry, const char* expected) const;

    std::string file_;
    YAML::Mark mark_;
    std::string name_;
    std::vector<Entry> entries_;
};

}  // namespace pgelect::config_detail
