// Percentiles and the result store that becomes the report's JSON line.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace bench {

// Nearest rank: with 30 samples p99 is the maximum.  NaN when empty.
double percentile(std::vector<double> v, double p);
double median(std::vector<double> v);
double max_of(const std::vector<double>& v);

// Numbers and strings by key (in insertion order) plus error messages.  Thread-safe.
class Results {
public:
    void num(const std::string& key, double v);
    void str(const std::string& key, const std::string& v);
    void error(const std::string& e);
    double get(const std::string& key) const;  // NaN if absent
    std::string get_str(const std::string& key) const;
    std::vector<std::string> errors() const;
    // One JSON object: every key in insertion order, then "errors".  NaN becomes null.
    std::string json() const;

private:
    void remember(const std::string& key);  // mu_ held

    mutable std::mutex mu_;
    std::vector<std::string> order_;
    std::map<std::string, double> nums_;
    std::map<std::string, std::string> strs_;
    std::vector<std::string> errors_;
};

// The run's results, filled by the phases and printed once at the end.
extern Results g_results;

// Stores <prefix>_trials, <prefix>_failed_trials and the p50, p99 and max of `samples`
// as <prefix>_p50<unit>, <prefix>_p99<unit>, <prefix>_max<unit>.
inline void record_trials(const std::string& prefix, const std::string& unit, const std::vector<double>& samples,
                          int failures) {
    g_results.num(prefix + "_trials", static_cast<double>(samples.size()));
    g_results.num(prefix + "_failed_trials", failures);
    g_results.num(prefix + "_p50" + unit, percentile(samples, 0.5));
    g_results.num(prefix + "_p99" + unit, percentile(samples, 0.99));
    g_results.num(prefix + "_max" + unit, max_of(samples));
}

}  // namespace bench
