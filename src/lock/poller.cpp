#include "lock/poller.hpp"

#include <algorithm>

namespace pgelect::detail {

std::shared_ptr<Poller::Request> Poller::ask(const std::string& name, TimePoint due, TimePoint earliest) {
    auto r = std::make_shared<Request>();
    r->name = name;
    r->due = due;
    r->earliest = std::min(earliest, due);
    std::lock_guard lk(mu_);
    pending_.push_back(r);
    return r;
}

void Poller::withdraw(const std::shared_ptr<Request>& r) {
    std::lock_guard lk(mu_);
    std::erase(pending_, r);
}

bool Poller::read_due(const std::shared_ptr<Request>& r) {
    std::vector<std::shared_ptr<Request>> batch;
    {
        std::lock_guard lk(mu_);
        if (std::find(pending_.begin(), pending_.end(), r) == pending_.end()) {
            return r->done.load(std::memory_order_acquire);  // being read elsewhere, or withdrawn
        }
        const auto now = clock_->now();
        std::erase_if(pending_, [&](const std::shared_ptr<Request>& p) {
            if (p != r && p->earliest > now) return false;
            batch.push_back(p);
            return true;
        });
    }
    std::vector<std::string> names;
    for (const auto& p : batch) names.push_back(p->name);
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    std::unordered_map<std::string, PolledRow> rows;
    std::exception_ptr error;
    try {
        rows = read_(names);
    } catch (...) {
        error = std::current_exception();
    }
    for (auto& p : batch) {
        p->error = error;
        auto it = rows.find(p->name);
        p->found = it != rows.end();
        if (p->found) p->row = it->second;
        p->done.store(true, std::memory_order_release);
    }
    for (const auto& name : names) board_.answered(name);
    return true;
}

bool Poller::answered(const std::shared_ptr<Request>& r, std::optional<PolledRow>& row) {
    if (!r->done.load(std::memory_order_acquire)) return false;
    if (r->error) std::rethrow_exception(r->error);
    row.reset();
    if (r->found) row = r->row;
    return true;
}

}  // namespace pgelect::detail
