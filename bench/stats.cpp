#include "stats.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace bench {
namespace {

std::string number(double v) {
    if (!std::isfinite(v)) return "null";
    char buf[64];
    if (v == std::floor(v) && std::fabs(v) < 1e15) {
        std::snprintf(buf, sizeof buf, "%.0f", v);
    } else {
        std::snprintf(buf, sizeof buf, "%.6g", v);
    }
    return buf;
}

std::string quote(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    return out + "\"";
}

}  // namespace

Results g_results;

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
    std::sort(v.begin(), v.end());
    auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
    rank = std::clamp<std::size_t>(rank, 1, v.size());
    return v[rank - 1];
}

double median(std::vector<double> v) { return percentile(std::move(v), 0.5); }

double max_of(const std::vector<double>& v) {
    return v.empty() ? std::numeric_limits<double>::quiet_NaN() : *std::max_element(v.begin(), v.end());
}

void Results::remember(const std::string& key) {
    if (!nums_.count(key) && !strs_.count(key)) order_.push_back(key);
}

void Results::num(const std::string& key, double v) {
    std::lock_guard lk(mu_);
    remember(key);
    nums_[key] = v;
}

void Results::str(const std::string& key, const std::string& v) {
    std::lock_guard lk(mu_);
    remember(key);
    strs_[key] = v;
}

void Results::error(const std::string& e) {
    std::lock_guard lk(mu_);
    errors_.push_back(e);
}

double Results::get(const std::string& key) const {
    std::lock_guard lk(mu_);
    auto it = nums_.find(key);
    return it == nums_.end() ? std::numeric_limits<double>::quiet_NaN() : it->second;
}

std::string Results::get_str(const std::string& key) const {
    std::lock_guard lk(mu_);
    auto it = strs_.find(key);
    return it == strs_.end() ? std::string() : it->second;
}

std::vector<std::string> Results::errors() const {
    std::lock_guard lk(mu_);
    return errors_;
}

std::string Results::json() const {
    std::lock_guard lk(mu_);
    std::string out = "{";
    for (const auto& k : order_) {
        out += quote(k) + ":";
        auto it = nums_.find(k);
        out += it != nums_.end() ? number(it->second) : quote(strs_.at(k));
        out += ",";
    }
    out += "\"errors\":[";
    for (std::size_t i = 0; i < errors_.size(); ++i) {
        if (i) out += ",";
        out += quote(errors_[i]);
    }
    return out + "]}";
}

}  // namespace bench
