// HttpServer: the operator's port. GET /metrics (Prometheus text format), /readyz (200
// once caught up, else 503) and /livez (200 while the process is alive: its writer makes
// progress, else 503). CivetWeb does HTTP.
#pragma once

#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

class CivetServer;
class CivetHandler;

namespace cachecar::metrics {

class HttpServer {
 public:
  // `not_ready_reason` answers /readyz: empty means ready (200 "ok"), anything else is
  // not ready (503 "not ready: <reason>"); `not_live_reason` answers /livez likewise
  // (503 "not live: <reason>"; null: always live). Both must be cheap and thread-safe.
  static Result<std::unique_ptr<HttpServer>> Start(
      const std::string& address, const std::shared_ptr<prometheus::Registry>& registry,
      std::function<std::string()> not_ready_reason,
      std::function<std::string()> not_live_reason = nullptr);
  ~HttpServer();
  // The port actually bound (useful with port 0).
  int port() const { return port_; }

 private:
  HttpServer() = default;
  std::unique_ptr<CivetServer> server_;
  std::vector<std::unique_ptr<CivetHandler>> handlers_;
  int port_ = 0;
};

}  // namespace cachecar::metrics
