#include "pgelect/log.hpp"

#include <iostream>
#include <memory>
#include <mutex>

namespace pgelect {

std::string_view to_string(LogLevel level) noexcept {
    switch (level) {
        case LogLevel::warning: return "warning";
        case LogLevel::error: return "error";
    }
    return "error";
}

namespace {
std::mutex sink_mu;
// A shared_ptr so that a message being delivered keeps its sink alive while
// set_log_sink() replaces it.
std::shared_ptr<const LogSink> sink;  // guarded by sink_mu; null: stderr

std::shared_ptr<const LogSink> current_sink() {
    std::lock_guard lk(sink_mu);
    return sink;
}
}  // namespace

void set_log_sink(LogSink s) {
    auto next = s ? std::make_shared<const LogSink>(std::move(s)) : nullptr;
    std::lock_guard lk(sink_mu);
    sink = std::move(next);
}

void log(LogLevel level, std::string_view message) {
    const auto s = current_sink();
    if (!s) {
        // One write per line, so that lines of different threads do not interleave.
        std::string line = "pgelect: ";
        line.append(message);
        line += '\n';
        std::cerr << line << std::flush;
        return;
    }
    try {
        (*s)(level, message);
    } catch (...) {
        // A failing sink must not take a pgelect thread down with it.
    }
}

}  // namespace pgelect
