// watch_latency: Put -> Watch event latency with many watchers, and a watcher load to hold
// open during catch-up.
//
//   --mode latency  opens --watchers watches (spread over --streams streams), --receivers
//                   of them (default: all) on the key Put to and the others each on a key
//                   of their own, then Puts that key --puts times, one every
//                   --interval-ms, each value carrying its sequence number; every
//                   receiver's event is timed from the moment its Put was sent. Prints
//                   p50/p99/max over all deliveries (the first --warmup Puts left out),
//                   and the Puts' own latency (to "applied") for comparison.
//   --mode hold     opens --watchers watches (allow_cold_cache) on keys key-00000000...
//                   (the bench topic's keys, one watcher each), prints "watching", and
//                   reads until stdin closes; then prints how many events arrived.
#include <grpcpp/create_channel.h>
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cachecar/v1/cache.grpc.pb.h"

using Clock = std::chrono::steady_clock;
namespace v1 = cachecar::v1;

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

double Percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()))];
}

struct Stream {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::WatchRequest, v1::WatchResponse>> rw;
  std::vector<double> latencies_us;
  long events = 0;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Put -> Watch event latency with many watchers"};
  std::string mode = "latency", target, topic = "bench-watch", key = "lat";
  int watchers = 1, streams = 0, puts = 100, interval_ms = 100, receivers = -1, warmup = 5;
  app.add_option("--mode", mode)->check(CLI::IsMember({"latency", "hold"}));
  app.add_option("--target", target)->required();
  app.add_option("--topic", topic);
  app.add_option("--watchers", watchers)->check(CLI::PositiveNumber);
  app.add_option("--streams", streams, "default: one per 100 watchers, at least 1");
  app.add_option("--puts", puts);
  app.add_option("--interval-ms", interval_ms);
  app.add_option("--receivers", receivers, "watchers on the Put key (default: all)");
  app.add_option("--warmup", warmup, "Puts not counted");
  CLI11_PARSE(app, argc, argv);
  if (streams <= 0) streams = std::max(1, (watchers + 99) / 100);
  streams = std::min(streams, watchers);
  if (receivers < 0 || receivers > watchers) receivers = watchers;

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < (streams + 49) / 50; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", i);
    channels.push_back(grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
  }
  std::vector<std::unique_ptr<Stream>> all;
  int next_watch = 0;
  for (int s = 0; s < streams; ++s) {
    auto st = std::make_unique<Stream>();
    auto stub = v1::CacheService::NewStub(channels[s / 50]);
    st->rw = stub->Watch(&st->context);
    int n = watchers / streams + (s < watchers % streams ? 1 : 0);
    for (int i = 0; i < n; ++i, ++next_watch) {
      v1::WatchRequest req;
      auto* c = req.mutable_create();
      c->set_watch_id(i);
      c->set_topic(topic);
      if (mode == "latency") {
        // Receivers spread evenly over the streams.
        bool receiver = static_cast<int64_t>(next_watch) * receivers / watchers !=
                        static_cast<int64_t>(next_watch + 1) * receivers / watchers;
        c->set_key(receiver ? key : "idle-" + std::to_string(next_watch));
      } else {
        char k[32];
        std::snprintf(k, sizeof(k), "key-%08d", next_watch);
        c->set_key(k);
        c->set_allow_cold_cache(true);
      }
      st->rw->Write(req);
    }
    for (int i = 0; i < n; ++i) {
      v1::WatchResponse r;
      if (!st->rw->Read(&r) || !r.has_created()) {
        std::fprintf(stderr, "watch not created: %s\n", r.ShortDebugString().c_str());
        return 1;
      }
    }
    all.push_back(std::move(st));
  }

  std::vector<std::atomic<int64_t>> sent_ns(std::max(puts, 1));
  std::vector<std::thread> readers;
  std::atomic<long> delivered{0};
  for (auto& st : all) {
    readers.emplace_back([&, s = st.get()] {
      v1::WatchResponse r;
      while (s->rw->Read(&r)) {
        for (const auto& e : r.events().events()) {
          ++s->events;
          ++delivered;
          if (mode != "latency") continue;
          const std::string& v = e.entry().value();  // {"seq":N}
          size_t at = v.find(':');
          if (at == std::string::npos) continue;
          int seq = std::atoi(v.c_str() + at + 1);
          if (seq < warmup || seq >= puts) continue;
          s->latencies_us.push_back((NowNs() - sent_ns[seq].load()) / 1000.0);
        }
      }
    });
  }

  if (mode == "hold") {
    std::printf("watching watchers=%d streams=%d\n", watchers, streams);
    std::fflush(stdout);
    std::string line;
    while (std::getline(std::cin, line)) {
    }
    std::printf("events=%ld\n", delivered.load());
  } else {
    auto stub = v1::CacheService::NewStub(channels[0]);
    std::vector<double> put_us;
    for (int i = 0; i < puts; ++i) {
      v1::PutRequest req;
      req.set_topic(topic);
      req.set_key(key);
      req.set_value("{\"seq\":" + std::to_string(i) + "}");
      v1::PutResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      sent_ns[i] = NowNs();
      grpc::Status status = stub->Put(&ctx, req, &resp);
      if (!status.ok()) {
        std::fprintf(stderr, "put failed: %s\n", status.error_message().c_str());
        return 1;
      }
      put_us.push_back((NowNs() - sent_ns[i]) / 1000.0);
      std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));  // pacing
    }
    const long want = static_cast<long>(receivers) * puts;
    auto give_up = Clock::now() + std::chrono::seconds(60);
    while (delivered.load() < want && Clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    for (auto& st : all) st->context.TryCancel();
    for (auto& t : readers) t.join();
    std::vector<double> lat;
    for (auto& st : all) lat.insert(lat.end(), st->latencies_us.begin(), st->latencies_us.end());
    std::sort(lat.begin(), lat.end());
    put_us.erase(put_us.begin(), put_us.begin() + std::min<size_t>(warmup, put_us.size()));
    std::sort(put_us.begin(), put_us.end());
    const long timed = static_cast<long>(receivers) * std::max(0, puts - warmup);
    std::printf("watchers=%d receivers=%d streams=%d puts=%d deliveries=%zu/%ld "
                "event_p50_us=%.0f "
                "event_p99_us=%.0f event_max_us=%.0f put_applied_p50_us=%.0f\n",
                watchers, receivers, streams, puts, lat.size(), timed, Percentile(lat, 0.5),
                Percentile(lat, 0.99), lat.empty() ? 0 : lat.back(), Percentile(put_us, 0.5));
    return static_cast<long>(lat.size()) == timed ? 0 : 1;
  }
  for (auto& st : all) st->context.TryCancel();
  for (auto& t : readers) t.join();
  return 0;
}
