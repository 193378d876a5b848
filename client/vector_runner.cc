// The C++ client's runner for tests/vectors/client_vectors.json (see its description):
// executes the steps against a sidecar and prints one JSON line per step.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <cstdio>
#include <exception>
#include <iostream>
#include <thread>

#include "client/client.h"
#include "client/resuming_watch.h"

using json = nlohmann::json;
using cachecar::Status;
using cachecar::client::Client;
using cachecar::client::ResumingWatch;
using cachecar::client::WatchItem;

namespace {


json Error(const Status& st) {
  std::vector<std::pair<std::string, std::string>> v;
  for (const auto& fv : st.violations()) v.emplace_back(fv.field, fv.reason);
  std::sort(v.begin(), v.end());
  json violations = json::array();
  for (const auto& [f, r] : v) violations.push_back({{"field", f}, {"reason", r}});
  return {{"error", {{"code", CodeName(st.code())}, {"reason", st.reason()},
                     {"violations", violations}}}};
}

}  // namespace

namespace {

int Run(int argc, char** argv) {
  CLI::App app{"client vector runner (C++)"};
  std::string address, topic, vectors;
  app.add_option("--address", address)->required();
  app.add_option("--topic", topic)->required();
  app.add_option("--vectors", vectors)->required();
  CLI11_PARSE(app, argc, argv);
  std::ifstream in(vectors);
  json doc = json::parse(in);
  cachecar::client::ClientOptions opts;
  opts.target = address;
  opts.timeout = std::chrono::seconds(10);
  Client client(opts);
  std::unique_ptr<ResumingWatch> watch;

  const json& steps = doc["steps"];
  for (size_t i = 0; i < steps.size(); ++i) {
    const json& step = steps[i];
    if (step.contains("harness")) {
      std::cout << json{{"step", i}, {"harness", step["harness"]}}.dump() << std::endl;
      std::string line;
      std::getline(std::cin, line);
      continue;
    }
    std::string op = step["op"];
    std::string t = step.value("topic", topic);
    json result;
    if (op == "wait_ready") {
      // WaitReady while the sidecar may still be starting: retry what is unreachable.
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      for (;;) {
        auto r = client.WaitReady(std::chrono::seconds(10));
        if (r.ok() && r->ready()) {
          result = {{"ready", true}};
          break;
        }
        if (std::chrono::steady_clock::now() > deadline) {
          result = r.ok() ? json{{"ready", false}} : Error(r.status());
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // sidecar starting
      }
    } else if (op == "get") {
      auto r = client.Get(t, step["key"]);
      if (!r.ok()) {
        result = Error(r.status());
      } else {
        result = {{"found", r->found()}};
        if (r->found()) result["value"] = r->entry().value();
      }
    } else if (op == "put" || op == "delete") {
      bool applied = false;
      Status st;
      if (op == "put") {
        auto r = client.Put(t, step["key"], step["value"]);
        st = r.status();
        if (r.ok()) applied = r->applied();
      } else {
        auto r = client.Delete(t, step["key"]);
        st = r.status();
        if (r.ok()) applied = r->applied();
      }
      result = st.ok() ? json{{"applied", applied}} : Error(st);
    } else if (op == "watch_start") {
      cachecar::client::WatchSpec spec;
      spec.topic = t;
      spec.key = step["prefix"];
      spec.prefix = true;
      // From the current revision, so that the stream opening later misses nothing.
      auto st = client.GetStatus();
      if (st.ok()) spec.from_revision = st->store_revision();
      watch = std::make_unique<ResumingWatch>(&client, spec);
      result = {{"started", true}};
    } else if (op == "watch_next") {
      json events = json::array();
      for (int n = 0; n < step["count"].get<int>(); ++n) {
        WatchItem it;
        if (!watch->Next(&it)) {
          result = Error(watch->status());
          break;
        }
        json e;
        switch (it.type) {
          case WatchItem::Type::kReset:
            e = {{"type", "RESET"}};
            break;
          case WatchItem::Type::kPut:
            e = {{"type", "PUT"}, {"key", it.key}, {"value", it.value}};
            break;
          case WatchItem::Type::kDelete:
            e = {{"type", "DELETE"}, {"key", it.key}};
            break;
        }
        events.push_back(e);
      }
      if (result.is_null()) result = {{"events", events}};
    } else if (op == "watch_stop") {
      watch->Close();
      result = {{"stopped", true}};
    } else {
      result = {{"unknown_op", op}};
    }
    std::cout << json{{"step", i}, {"result", result}}.dump() << std::endl;
  }
  return 0;
}

}  // namespace

// Nothing is expected to throw (errors are Status values); if a library does, say so on
// one line and exit non-zero rather than abort.
int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: unexpected error: %s\n", "client_vector_runner", e.what());
  } catch (...) {
    std::fprintf(stderr, "%s: unexpected error\n", "client_vector_runner");
  }
  return 1;
}
