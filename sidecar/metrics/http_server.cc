#include "metrics/http_server.h"

#include <CivetServer.h>
#include <prometheus/text_serializer.h>

#include "metrics/process_metrics.h"

namespace cachecar::metrics {
namespace {

void Reply(mg_connection* conn, int code, const char* content_type, const std::string& body) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            code, code == 200 ? "OK" : "Service Unavailable", content_type, body.size());
  mg_write(conn, body.data(), body.size());
}

class MetricsHandler : public CivetHandler {
 public:
  explicit MetricsHandler(std::shared_ptr<prometheus::Registry> r) : registry_(std::move(r)) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    prometheus::TextSerializer serializer;
    std::vector<prometheus::MetricFamily> families = registry_->Collect();
    for (auto& f : CollectProcessMetrics()) families.push_back(std::move(f));
    Reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", serializer.Serialize(families));
    return true;
  }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
};

class ProbeHandler : public CivetHandler {
 public:
  ProbeHandler(std::function<std::string()> problem, std::string what)
      : problem_(std::move(problem)), what_(std::move(what)) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    std::string problem = problem_ ? problem_() : std::string();
    if (problem.empty()) {
      Reply(conn, 200, "text/plain", "ok\n");
    } else {
      Reply(conn, 503, "text/plain", what_ + ": " + problem + "\n");
    }
    return true;
  }

 private:
  std::function<std::string()> problem_;
  const std::string what_;
};

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& address, const std::shared_ptr<prometheus::Registry>& registry,
    std::function<std::string()> not_ready_reason,
    std::function<std::string()> not_live_reason) {
  std::unique_ptr<HttpServer> s(new HttpServer());
  std::vector<std::string> options = {"listening_ports", address, "num_threads", "2"};
  try {
    s->server_ = std::make_unique<CivetServer>(options);
  } catch (const std::exception& e) {
    return Status(Code::kUnavailable, "cannot listen for HTTP on " + address + ": " + e.what(),
                  "LISTEN_FAILED");
  }
  s->handlers_.push_back(std::make_unique<MetricsHandler>(registry));
  s->handlers_.push_back(std::make_unique<ProbeHandler>(std::move(not_ready_reason), "not ready"));
  s->handlers_.push_back(std::make_unique<ProbeHandler>(std::move(not_live_reason), "not live"));
  s->server_->addHandler("/metrics", s->handlers_[0].get());
  s->server_->addHandler("/readyz", s->handlers_[1].get());
  s->server_->addHandler("/livez", s->handlers_[2].get());
  std::vector<int> ports = s->server_->getListeningPorts();
  s->port_ = ports.empty() ? 0 : ports[0];
  return s;
}

HttpServer::~HttpServer() {
  if (server_) server_->close();
}

}  // namespace cachecar::metrics
