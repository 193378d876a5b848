// load_driver: closed-loop gRPC load against cachecar or the echo server, with the same
// client for both. Keeps --concurrency calls in flight for --seconds (after a warm-up),
// each on a random key of the keyspace, and prints QPS (completions over the time they
// really spanned) and latency percentiles (with their sample count).
#include <google/protobuf/arena.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <vector>

#include "cachecar/v1/cache.grpc.pb.h"

using Clock = std::chrono::steady_clock;
namespace v1 = cachecar::v1;

struct Options {
  std::string target, method = "get", topic = "bench";
  long keys = 1000000;
  int batch = 100, concurrency = 16, channels = 0;
  double seconds = 10, warmup = 2;
};

class Driver {
 public:
  explicit Driver(const Options& o) : o_(o) {
    int n = o.channels > 0 ? o.channels : std::max(1, o.concurrency / 8);
    for (int i = 0; i < n; ++i) {
      grpc::ChannelArguments args;
      args.SetInt("grpc.channel_id", i);  // distinct connections
      stubs_.push_back(v1::CacheService::NewStub(
          grpc::CreateCustomChannel(o.target, grpc::InsecureChannelCredentials(), args)));
    }
    slots_.resize(o.concurrency);
    for (int i = 0; i < o.concurrency; ++i) slots_[i].rng = 0x9E3779B97F4A7C15ull * (i + 1);
  }

  void Run() {
    start_ = Clock::now();
    measure_from_ = start_ + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(o_.warmup));
    end_ = measure_from_ + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(o_.seconds));
    outstanding_ = o_.concurrency;
    for (int i = 0; i < o_.concurrency; ++i) Issue(i);
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return outstanding_ == 0; });
  }

  void Report() {
    std::vector<double> all;
    long errors = 0, lookups = 0, hits = 0, completed = 0;
    Clock::time_point first = Clock::time_point::max(), last = Clock::time_point::min();
    for (auto& s : slots_) {
      all.insert(all.end(), s.latencies_us.begin(), s.latencies_us.end());
      errors += s.errors;
      lookups += s.lookups;
      hits += s.hits;
      completed += s.completed;
      if (s.completed > 0) {
        first = std::min(first, s.first_done);
        last = std::max(last, s.last_done);
      }
    }
    std::sort(all.begin(), all.end());
    auto pct = [&](double p) { return all.empty() ? 0.0 : all[static_cast<size_t>(p * (all.size() - 1))]; };
    // Throughput over the time the completions really spanned (a loaded machine may run
    // the driver's callbacks late), not over the --seconds asked for.
    double window = completed > 1 ? std::chrono::duration<double>(last - first).count() : 0;
    double qps = window > 0 ? static_cast<double>(completed - 1) / window : 0;
    std::printf("method=%s concurrency=%d calls=%ld window_s=%.3f errors=%ld qps=%.0f "
                "keys_per_second=%.0f samples=%zu p50_us=%.0f p99_us=%.0f hit_ratio=%.3f\n",
                o_.method.c_str(), o_.concurrency, completed, window, errors, qps,
                qps * (o_.method == "batchget" ? o_.batch : 1), all.size(), pct(0.50),
                pct(0.99), lookups == 0 ? 0.0 : static_cast<double>(hits) / lookups);
  }

 private:
  struct Slot {
    std::unique_ptr<grpc::ClientContext> ctx;
    v1::GetRequest get;
    v1::GetResponse get_resp;
    v1::BatchGetRequest batch;
    v1::PutRequest put;
    v1::PutResponse put_resp;
    // Responses live on an arena reset before each call, as a throughput-minded client
    // would do: proto3 Clear() frees submessages, so reusing a heap message still costs
    // ~500 malloc/free pairs per BatchGet, which on two cores is CPU taken from the server.
    std::unique_ptr<google::protobuf::Arena> arena = std::make_unique<google::protobuf::Arena>();
    v1::BatchGetResponse* batch_resp = nullptr;
    Clock::time_point sent;
    Clock::time_point first_done, last_done;  // successful completions in the window
    long completed = 0;
    uint64_t rng;
    std::vector<double> latencies_us;
    long errors = 0;
    long lookups = 0, hits = 0;  // found keys: a wrong keyspace would inflate the numbers
  };

  std::string Key(Slot& s) {
    s.rng ^= s.rng << 13;
    s.rng ^= s.rng >> 7;
    s.rng ^= s.rng << 17;
    // "key-%08ld" without snprintf, which showed in the driver's profile.
    std::string k = "key-00000000";
    uint64_t n = s.rng % static_cast<uint64_t>(o_.keys);
    for (int d = 11; d >= 4 && n > 0; --d, n /= 10) k[d] = static_cast<char>('0' + n % 10);
    return k;
  }

  void Issue(int i) {
    Slot& s = slots_[i];
    s.ctx = std::make_unique<grpc::ClientContext>();
    s.ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto* stub = stubs_[i % stubs_.size()].get();
    s.sent = Clock::now();
    auto done = [this, i](grpc::Status st) { OnDone(i, st); };
    if (o_.method == "get") {
      s.get.set_topic(o_.topic);
      s.get.set_key(Key(s));
      stub->async()->Get(s.ctx.get(), &s.get, &s.get_resp, done);
    } else if (o_.method == "put") {
      // A Put that waits until applied (read-your-writes), of a record valid for
      // bench/schemas/bench_record.json, as bench/put_latency writes one at a time.
      s.put.set_topic(o_.topic);
      s.put.set_key(Key(s));
      uint64_t n = s.rng % 1000000;
      char v[256];
      std::snprintf(v, sizeof(v),
                    "{\"id\":\"%08llx-1111-4222-8333-%012llu\",\"email\":\"user%llu@example.com\","
                    "\"displayName\":\"User %llu\",\"n\":%llu,\"active\":true,"
                    "\"updatedAt\":\"2026-11-%02lluT%02llu:%02llu:%02lluZ\"}",
                    static_cast<unsigned long long>(n), static_cast<unsigned long long>(n),
                    static_cast<unsigned long long>(n), static_cast<unsigned long long>(n),
                    static_cast<unsigned long long>(n),
                    static_cast<unsigned long long>(1 + n % 28),
                    static_cast<unsigned long long>(n / 3600 % 24),
                    static_cast<unsigned long long>(n / 60 % 60),
                    static_cast<unsigned long long>(n % 60));
      s.put.set_value(v);
      stub->async()->Put(s.ctx.get(), &s.put, &s.put_resp, done);
    } else {
      s.batch.set_topic(o_.topic);
      s.batch.clear_keys();
      for (int k = 0; k < o_.batch; ++k) s.batch.add_keys(Key(s));
      s.arena->Reset();
      s.batch_resp = google::protobuf::Arena::CreateMessage<v1::BatchGetResponse>(s.arena.get());
      stub->async()->BatchGet(s.ctx.get(), &s.batch, s.batch_resp, done);
    }
  }

  void OnDone(int i, const grpc::Status& st) {
    Slot& s = slots_[i];
    auto now = Clock::now();
    if (st.ok() && now >= measure_from_ && now <= end_) {
      if (s.completed++ == 0) s.first_done = now;
      s.last_done = now;
    }
    if (s.sent >= measure_from_ && now <= end_) {
      if (st.ok() && o_.method == "put" && !s.put_resp.applied()) {
        ++s.errors;  // answered without the read-your-writes it asked for
      } else if (st.ok()) {
        s.latencies_us.push_back(std::chrono::duration<double, std::micro>(now - s.sent).count());
        if (o_.method == "get") {
          ++s.lookups;
          s.hits += s.get_resp.found();
        } else if (o_.method == "batchget") {
          for (const auto& r : s.batch_resp->results()) {
            ++s.lookups;
            s.hits += r.found();
          }
        }
      } else {
        ++s.errors;
      }
    }
    if (now < end_) {
      Issue(i);
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (--outstanding_ == 0) cv_.notify_all();
  }

  Options o_;
  std::vector<std::unique_ptr<v1::CacheService::Stub>> stubs_;
  std::vector<Slot> slots_;
  Clock::time_point start_, measure_from_, end_;
  std::mutex mu_;
  std::condition_variable cv_;
  int outstanding_ = 0;
};

int main(int argc, char** argv) {
  CLI::App app{"gRPC load driver for cachecar benchmarks"};
  Options o;
  app.add_option("--target", o.target)->required();
  app.add_option("--method", o.method)->check(CLI::IsMember({"get", "batchget", "put"}));
  app.add_option("--topic", o.topic);
  app.add_option("--keys", o.keys, "keyspace: key-00000000 .. key-(N-1)");
  app.add_option("--batch", o.batch, "keys per BatchGet");
  app.add_option("--concurrency", o.concurrency);
  app.add_option("--channels", o.channels, "connections (default concurrency/8, at least 1)");
  app.add_option("--seconds", o.seconds);
  app.add_option("--warmup", o.warmup);
  CLI11_PARSE(app, argc, argv);
  Driver d(o);
  d.Run();
  d.Report();
  return 0;
}
