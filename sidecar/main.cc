// cachecar: a per-pod sidecar that materializes Kafka topics into LMDB and serves them
// over localhost gRPC. See README.md.
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <pthread.h>

#include <atomic>
#include <future>
#include <memory>
#include <thread>

#include "common/log.h"
#include "common/version.h"
#include "config/config.h"
#include "kafka/materializer.h"
#include "schema/schema_set.h"
#include "server.h"
#include "transform/worker.h"

namespace {

// Exit codes: 0 ok; 1 cannot start (see the log); 2 bad usage or configuration.
constexpr int kUsage = 2;

int Run(int argc, char** argv) {
  CLI::App app{"cachecar: a local, always-current copy of Kafka topics, served over gRPC"};
  std::string config_path;
  cachecar::config::Overrides o;
  bool check_only = false;
  app.set_version_flag("--version", std::string("cachecar ") + cachecar::Version() + " (" +
                                        cachecar::Revision() + ")");
  // An unknown flag is named as such, before anything else is said about the command line
  // (CLI11 would first complain that --config is missing); every usage error exits 2.
  app.allow_extras();
  app.add_option("-c,--config", config_path, "YAML configuration file");
  app.add_option("--bootstrap-servers", o.bootstrap_servers, "Kafka bootstrap servers");
  app.add_option("--store-path", o.store_path, "LMDB directory");
  app.add_option("--grpc-address", o.grpc_address, "gRPC listen address (host:port)");
  app.add_option("--unix-socket", o.unix_socket, "also listen on this Unix socket");
  app.add_option("--http-address", o.http_address, "metrics/probes address (host:port)");
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn or error");
  app.add_option("--bootstrap-from", o.bootstrap_from,
                 "fill an empty store from this snapshot file (cachecarctl snapshot save)");
  app.add_flag("--check-config", check_only, "validate the configuration and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);  // prints the help, the version or the error
    return rc == 0 ? 0 : kUsage;
  }
  if (!app.remaining().empty()) {
    std::fprintf(stderr, "cachecar: unknown argument %s (see --help)\n",
                 app.remaining().front().c_str());
    return kUsage;
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "cachecar: --config is required (see --help)\n");
    return kUsage;
  }

  auto cfg = cachecar::config::LoadConfig(config_path, cachecar::config::ProcessEnv(), o);
  if (!cfg.ok()) {
    std::fprintf(stderr, "cachecar: %s\n", cfg.status().message().c_str());
    for (const auto& v : cfg.status().violations()) {
      std::fprintf(stderr, "  %s: %s\n", v.field.empty() ? "(document)" : v.field.c_str(),
                   v.description.c_str());
    }
    return kUsage;
  }
  if (check_only) {
    // Schemas are part of the configuration: compile them exactly as a start would.
    std::vector<cachecar::schema::TopicSchema> schemas = cachecar::schema::TopicSchemasOf(*cfg);
    prometheus::Registry registry;
    cachecar::log::Init("text", "warn");
    auto loaded = cachecar::schema::SchemaSet::Load(schemas, &registry);
    if (loaded.ok()) {
      loaded = cachecar::schema::SchemaSet::Load(cachecar::schema::EntrySchemasOf(*cfg),
                                                 &registry);
    }
    if (!loaded.ok()) {
      std::fprintf(stderr, "cachecar: %s\n", loaded.status().message().c_str());
      return kUsage;
    }
    // So are transforms: compiled in a worker, as a start would.
    auto transforms = cachecar::kafka::StartTransforms(*cfg, nullptr);
    if (!transforms.ok()) {
      std::fprintf(stderr, "cachecar: %s\n", transforms.status().message().c_str());
      return kUsage;
    }
    auto view_keys = cachecar::kafka::StartViewKeys(*cfg, nullptr);
    if (!view_keys.ok()) {
      std::fprintf(stderr, "cachecar: %s\n", view_keys.status().message().c_str());
      return kUsage;
    }
    const size_t topics = cfg->kafka_topic_count();
    const size_t views = cfg->topics.size() - topics;
    std::printf("%s: ok (%zu topics%s)\n", config_path.c_str(), topics,
                views == 0 ? "" : (", " + std::to_string(views) + " views").c_str());
    return 0;
  }
  cachecar::log::Init(cfg->log.format, cfg->log.level);

  // Signals are taken by sigwait below, never by an arbitrary thread.
  // A shell without job control starts background commands with SIGINT ignored; an ignored
  // signal never reaches sigwait, so restore the defaults first.
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // One thread takes every signal. While the server is starting (a bootstrap may take
  // minutes) a signal exits at once: nothing is half-installed (a bootstrap moves its store
  // into place in one step, and its leftovers go at the next start), and Kubernetes' grace
  // period is not spent waiting. Once running, the first signal starts the orderly
  // shutdown and a second one, during it, exits at once: the store is safe to leave at
  // any moment (every commit is one LMDB transaction).
  auto first_signal = std::make_shared<std::promise<int>>();
  std::future<int> stop = first_signal->get_future();
  auto running = std::make_shared<std::atomic<bool>>(false);
  std::thread([signals, first_signal, running] {
    int sig = 0;
    sigwait(&signals, &sig);
    const char* name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
    if (!running->load()) {
      cachecar::log::Warn("signal while starting: exiting at once", {{"signal", name}});
      std::_Exit(128 + sig);
    }
    first_signal->set_value(sig);
    int again = 0;
    sigwait(&signals, &again);
    cachecar::log::Warn("second signal: exiting at once",
                        {{"signal", again == SIGTERM ? "SIGTERM" : "SIGINT"}});
    std::_Exit(128 + again);
  }).detach();

  auto server = cachecar::Server::BuildAndStart(std::move(cfg).value());
  if (!server.ok()) {
    cachecar::log::Error("cannot start", {{"error", server.status().ToString()}});
    return 1;
  }
  running->store(true);
  int sig = stop.get();
  cachecar::log::Info("shutting down", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  (*server)->Shutdown();
  return 0;
}

}  // namespace

// Nothing is expected to throw (errors are Status values); if a library does, say so on
// one line and exit non-zero rather than abort.
int main(int argc, char** argv) {
  // Started again as the transform worker (transform/worker.h)?
  if (auto code = cachecar::transform::MaybeRunWorker(argc, argv)) return *code;
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: unexpected error: %s\n", "cachecar", e.what());
  } catch (...) {
    std::fprintf(stderr, "%s: unexpected error\n", "cachecar");
  }
  return 1;
}
