// MetricsServer: prometheus::Exposer on one address and path.
#include <prometheus/exposer.h>

#include "pgelect/errors.hpp"
#include "pgelect/metrics.hpp"

namespace pgelect {

MetricsServer::MetricsServer(const std::string& listen,
                             std::shared_ptr<prometheus::Registry> registry, const std::string& path)
    : path_(path), registry_(std::move(registry)) {
    const auto colon = listen.rfind(':');
    if (listen.empty() || colon == std::string::npos || colon + 1 == listen.size())
        throw InvalidArgumentError("metrics: listen address \"" + listen + "\" is not host:port");
    if (path_.empty() || path_.front() != '/')
        throw InvalidArgumentError("metrics: path \"" + path_ + "\" does not start with '/'");
    if (!registry_) throw InvalidArgumentError("metrics: no registry to serve");
    host_ = colon == 0 ? "127.0.0.1" : listen.substr(0, colon);
    if (host_ == "0.0.0.0") host_ = "127.0.0.1";  // for url(): the wildcard is not dialable
    if (host_ == "[::]") host_ = "[::1]";
    try {
        exposer_ = std::make_unique<prometheus::Exposer>(listen, 2);
    } catch (const std::exception& e) {
        throw UnavailableError("metrics: cannot listen on " + listen + ": " + e.what());
    }
    exposer_->RegisterCollectable(registry_, path_);
}

MetricsServer::~MetricsServer() = default;

int MetricsServer::port() const {
    const auto ports = exposer_->GetListeningPorts();
    return ports.empty() ? 0 : ports.front();
}

std::string MetricsServer::url() const {
    return "http://" + host_ + ":" + std::to_string(port()) + path_;
}

}  // namespace pgelect
