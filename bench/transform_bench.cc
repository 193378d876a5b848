// The cost of one record's transform, by engine and path (bench/run.sh phase transforms):
//   BM_JaqInProcess   the projection in-process (it takes the short path: jq.rs Projection)
//   BM_JaqInterpreted the same filter behind `. |`, through jaq's interpreter: parsing,
//                     filtering and printing one record
//   BM_SandboxBatch   the same through the transform worker, batches of 2,000 records as
//                     the materializer sends them (per record: the copies each way)
//   BM_MergePatch     RFC 7396 merge of a record onto a stored value (nlohmann::json)
// run.sh prints Debian's jq 1.6 (libjq) CLI over the same records beside these.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include "transform/jq_filter.h"
#include "transform/merge_patch.h"
#include "transform/sandbox.h"
#include "transform/worker.h"

namespace {

using cachecar::transform::Input;

constexpr const char* kProjection = "{id, email, name: .displayName, active}";

std::vector<std::string> Records(int n) {
  std::vector<std::string> out;
  char value[256];
  for (long i = 0; i < n; ++i) {
    std::snprintf(value, sizeof(value),
                  "{\"id\":\"%08lx-1111-4222-8333-%012ld\",\"email\":\"user%ld@example.com\","
                  "\"displayName\":\"User %ld\",\"n\":%ld,\"active\":true,\"pad\":\"xxxxxxxxx\","
                  "\"updatedAt\":\"2026-11-%02ldT%02ld:%02ld:%02ldZ\"}",
                  i, i, i, i, i, 1 + i % 28, i / 3600 % 24, i / 60 % 60, i % 60);
    out.emplace_back(value);
  }
  return out;
}

void RunInProcess(benchmark::State& state, const std::string& code) {
  auto filter = cachecar::transform::JqFilter::Compile(code);
  auto records = Records(2000);
  size_t i = 0;
  for (auto _ : state) {
    Input in;
    in.key = "key";
    in.value = records[i++ % records.size()];
    benchmark::DoNotOptimize((*filter)->Run(in, 1 << 20));
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_JaqInProcess(benchmark::State& state) { RunInProcess(state, kProjection); }
BENCHMARK(BM_JaqInProcess);

void BM_JaqInterpreted(benchmark::State& state) {
  RunInProcess(state, std::string(". | ") + kProjection);
}
BENCHMARK(BM_JaqInterpreted);

void BM_SandboxBatch(benchmark::State& state) {
  auto sandbox = cachecar::transform::Sandbox::Start({kProjection}, {});
  if (!sandbox.ok()) {
    state.SkipWithError(sandbox.status().ToString().c_str());
    return;
  }
  auto records = Records(2000);
  std::vector<Input> batch(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    batch[i].key = "key";
    batch[i].value = records[i];
    batch[i].headers_json = "{}";
  }
  for (auto _ : state) benchmark::DoNotOptimize((*sandbox)->Run(batch, 1 << 20));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(batch.size()));
}
BENCHMARK(BM_SandboxBatch)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_MergePatch(benchmark::State& state) {
  auto records = Records(2000);
  const std::string patch = R"({"email":"new@example.com","n":7,"pad":null})";
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        cachecar::transform::MergePatch(std::string_view(records[i++ % records.size()]), patch));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MergePatch);

}  // namespace

int main(int argc, char** argv) {
  // The sandbox's worker is this program started again.
  if (auto code = cachecar::transform::MaybeRunWorker(argc, argv)) return *code;
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
