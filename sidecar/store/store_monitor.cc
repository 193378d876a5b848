#include "store/store_monitor.h"

#include <sys/statvfs.h>

#include "common/log.h"

namespace cachecar::store {

StoreMonitor::StoreMonitor(const Store* store, prometheus::Registry* registry,
                           const Status& recreated)
    : store_(store), stats_(StoreStats::Register(*registry)) {
  // Every reason exists at 0 from the start, so an alert on one needs no `or vector(0)`.
  for (const char* reason : {"STORE_CORRUPT", "STORE_INCOMPATIBLE", "STORE_UNSYNCED"}) {
    stats_.recreated->Add({{"reason", reason}});
  }
  if (!recreated.ok()) stats_.recreated->Add({{"reason", recreated.reason()}}).Increment();
  Report();
}

StoreMonitor::~StoreMonitor() { Stop(); }

void StoreMonitor::Start(std::chrono::milliseconds period) {
  thread_ = std::thread([this, period] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, period, [this] { return stop_; })) {
      lock.unlock();
      Report();
      lock.lock();
    }
  });
}

void StoreMonitor::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void StoreMonitor::Report() {
  std::lock_guard<std::mutex> lock(report_mu_);
  Store::Usage u = store_->GetUsage();
  stats_.map_size->Set(static_cast<double>(u.map_size_bytes));
  stats_.used_bytes->Set(static_cast<double>(u.used_bytes));
  if (u.map_resizes > resizes_seen_) {
    stats_.map_resizes->Increment(static_cast<double>(u.map_resizes - resizes_seen_));
    log::Info("store map grew", {{"map_size_bytes", u.map_size_bytes}});
    resizes_seen_ = u.map_resizes;
  }
  struct statvfs fs;
  if (statvfs(store_->options().path.c_str(), &fs) == 0) {
    stats_.disk_free->Set(static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize));
  }
}

}  // namespace cachecar::store
