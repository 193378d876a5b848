#include "metrics/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

namespace cachecar::metrics {
namespace {

// A minimal HTTP/1.1 GET over loopback; returns the whole response.
std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  (void)!write(fd, req.data(), req.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

TEST(HttpServerTest, ServesProbesAndMetrics) {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter().Name("cachecar_test_total").Help("t").Register(*registry).Add({}).Increment();
  std::atomic<bool> ready{false};
  auto s = HttpServer::Start("127.0.0.1:0", registry, [&] {
    return ready.load() ? std::string() : std::string("topic t partition 0 halted");
  });
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  int port = (*s)->port();
  ASSERT_GT(port, 0);
  std::string not_ready = HttpGet(port, "/readyz");
  EXPECT_NE(not_ready.find("503"), std::string::npos);
  EXPECT_NE(not_ready.find("not ready: topic t partition 0 halted"), std::string::npos);
  EXPECT_NE(HttpGet(port, "/livez").find("200 OK"), std::string::npos);
  ready = true;
  EXPECT_NE(HttpGet(port, "/readyz").find("200 OK"), std::string::npos);
  std::string metrics = HttpGet(port, "/metrics");
  EXPECT_NE(metrics.find("cachecar_test_total 1"), std::string::npos);
  EXPECT_NE(HttpGet(port, "/nothing-here").find("404"), std::string::npos);
}

TEST(HttpServerTest, PortInUseIsAClearError) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto first = HttpServer::Start("127.0.0.1:0", registry, [] { return std::string(); });
  ASSERT_TRUE(first.ok());
  auto second = HttpServer::Start("127.0.0.1:" + std::to_string((*first)->port()), registry,
                                  [] { return std::string(); });
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("cannot listen"), std::string::npos);
}

}  // namespace
}  // namespace cachecar::metrics

namespace cachecar::metrics {
namespace {

TEST(HttpServerTest, LivezFailsWhileTheLivenessCheckNamesAProblem) {
  auto registry = std::make_shared<prometheus::Registry>();
  std::atomic<bool> alive{true};
  auto s = HttpServer::Start(
      "127.0.0.1:0", registry, [] { return std::string(); },
      [&] { return alive.load() ? std::string() : std::string("the writer made no progress"); });
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  int port = (*s)->port();
  EXPECT_NE(HttpGet(port, "/livez").find("200 OK"), std::string::npos);
  alive = false;
  std::string dead = HttpGet(port, "/livez");
  EXPECT_NE(dead.find("503"), std::string::npos);
  EXPECT_NE(dead.find("not live: the writer made no progress"), std::string::npos);
}

}  // namespace
}  // namespace cachecar::metrics
