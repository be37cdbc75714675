// Test helpers for metrics: a tiny HTTP GET, a parser for the Prometheus text
// format, free ports, and the registry rendered as text.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace pgelect::test {

struct HttpResponse {
    int status = 0;  // 0: no connection or no valid answer
    std::string body;
};

// GET http://127.0.0.1:<port><target> over HTTP/1.0 (the server closes the
// connection after the answer).  Gives up after `timeout_s` per socket call.
inline HttpResponse http_get(int port, const std::string& target, int timeout_s = 5) {
    HttpResponse out;
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return out;
    timeval tv{timeout_s, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string raw;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        const std::string request = "GET " + target + " HTTP/1.0\r\nHost: 127.0.0.1:" +
                                    std::to_string(port) + "\r\nConnection: close\r\n\r\n";
        if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size())) {
            char buf[8192];
            ssize_t n;
            while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) raw.append(buf, static_cast<std::size_t>(n));
        }
    }
    ::close(fd);
    const auto header_end = raw.find("\r\n\r\n");
    if (raw.rfind("HTTP/1.", 0) != 0 || header_end == std::string::npos || raw.size() < 12) return out;
    out.status = std::stoi(raw.substr(9, 3));
    out.body = raw.substr(header_end + 4);
    return out;
}

// A port nobody listens on right now (bound to port 0, then closed).
inline int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        if (fd >= 0) ::close(fd);
        throw std::runtime_error("free_port: cannot bind");
    }
    ::close(fd);
    return ntohs(addr.sin_port);
}

using Labels = std::map<std::string, std::string>;

struct Sample {
    std::string name;
    Labels labels;
    double value = 0;
};

// Parses the text exposition format (comments skipped; label values without
// escaped quotes, which is all pgelect writes).
inline std::vector<Sample> parse_samples(const std::string& text) {
    std::vector<Sample> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        Sample s;
        std::size_t pos = line.find_first_of("{ ");
        if (pos == std::string::npos) continue;
        s.name = line.substr(0, pos);
        if (line[pos] == '{') {
            const auto close = line.find('}', pos);
            if (close == std::string::npos) continue;
            std::string body = line.substr(pos + 1, close - pos - 1);
            std::size_t i = 0;
            while (i < body.size()) {
                const auto eq = body.find('=', i);
                const auto q1 = body.find('"', eq);
                const auto q2 = body.find('"', q1 + 1);
                if (eq == std::string::npos || q1 == std::string::npos || q2 == std::string::npos) break;
                s.labels[body.substr(i, eq - i)] = body.substr(q1 + 1, q2 - q1 - 1);
                i = q2 + 1;
                if (i < body.size() && body[i] == ',') ++i;
            }
            pos = close + 1;
        }
        std::istringstream value(line.substr(pos));
        std::string v;
        value >> v;
        s.value = v == "+Inf" ? 1e308 : std::stod(v);
        out.push_back(std::move(s));
    }
    return out;
}

// The value of the one sample `name` whose labels include `labels`; nullopt
// if there is none (or more than one).
inline std::optional<double> value_of(const std::vector<Sample>& samples, const std::string& name,
                                      const Labels& labels = {}) {
    std::optional<double> found;
    for (const auto& s : samples) {
        if (s.name != name) continue;
        bool match = true;
        for (const auto& [k, v] : labels) {
            auto it = s.labels.find(k);
            match = match && it != s.labels.end() && it->second == v;
        }
        if (!match) continue;
        if (found) return std::nullopt;
        found = s.value;
    }
    return found;
}

// How many samples named `name` carry `labels`.
inline int count_of(const std::vector<Sample>& samples, const std::string& name,
                    const Labels& labels = {}) {
    int n = 0;
    for (const auto& s : samples) {
        if (s.name != name) continue;
        bool match = true;
        for (const auto& [k, v] : labels) {
            auto it = s.labels.find(k);
            match = match && it != s.labels.end() && it->second == v;
        }
        n += match;
    }
    return n;
}

inline std::vector<Sample> collect(const prometheus::Registry& registry) {
    return parse_samples(prometheus::TextSerializer().Serialize(registry.Collect()));
}

}  // namespace pgelect::test
