// The cost of decoding one registry record, by format (bench/run.sh phase registry): the
// same record bench_produce writes, as an Avro datum and as a Protobuf payload.
//   BM_AvroDecode              AvroSchema::Decode: the datum to Avro's JSON encoding
//   BM_ProtobufDecode          ProtobufSchema::Decode: parse, then cachecar's printer
//   BM_ProtobufParseOnly       the dynamic-message parse alone (the floor of the above)
//   BM_ProtobufConverter       parse, then libprotobuf's JSON converter over the bytes
//                              again (what Decode did before the printer)
#include <benchmark/benchmark.h>

#include <google/protobuf/compiler/parser.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/type_resolver_util.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "registry/avro_codec.h"
#include "registry/protobuf_codec.h"

namespace {

namespace pb = google::protobuf;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Records as bench/produce.cc writes them (without the 5-byte header).
std::vector<std::string> Records(bool avro, int n) {
  std::vector<std::string> records;
  for (long i = 0; i < n; ++i) {
    char f[7][64];
    std::snprintf(f[0], 64, "%08lx-1111-4222-8333-%012ld", i, i);
    std::snprintf(f[1], 64, "user%ld@example.com", i);
    std::snprintf(f[2], 64, "User %ld", i);
    std::snprintf(f[5], 64, "xxxxxxxxx");
    std::snprintf(f[6], 64, "2026-11-%02ldT%02ld:%02ld:%02ldZ", 1 + i % 28, i / 3600 % 24,
                  i / 60 % 60, i % 60);
    std::string out;
    auto varint = [&](uint64_t v) {
      while (v >= 0x80) {
        out.push_back(static_cast<char>(v | 0x80));
        v >>= 7;
      }
      out.push_back(static_cast<char>(v));
    };
    auto zigzag = [&](int64_t v) {
      varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
    };
    if (avro) {
      auto str = [&](const char* t) {
        zigzag(static_cast<int64_t>(std::strlen(t)));
        out.append(t);
      };
      str(f[0]); str(f[1]); str(f[2]); zigzag(i); out.push_back(1); str(f[5]); str(f[6]);
    } else {
      out.push_back(0);  // message indexes [0]
      auto str = [&](int field, const char* t) {
        varint(static_cast<uint64_t>(field) << 3 | 2);
        varint(std::strlen(t));
        out.append(t);
      };
      str(1, f[0]); str(2, f[1]); str(3, f[2]);
      varint(4 << 3); varint(static_cast<uint64_t>(i));
      varint(5 << 3); varint(1);
      str(6, f[5]); str(7, f[6]);
    }
    records.push_back(std::move(out));
  }
  return records;
}

const std::string kDir = CACHECAR_SOURCE_DIR "/bench/schemas/";

void BM_AvroDecode(benchmark::State& state) {
  auto schema = cachecar::registry::AvroSchema::Compile(ReadFile(kDir + "bench_record.avsc"));
  if (!schema.ok()) return state.SkipWithError(schema.status().message().c_str());
  std::vector<std::string> records = Records(true, 1000);
  size_t i = 0;
  for (auto _ : state) {
    auto json = (*schema)->Decode(records[i++ % records.size()], 1 << 20);
    benchmark::DoNotOptimize(json);
  }
}
BENCHMARK(BM_AvroDecode);

void BM_ProtobufDecode(benchmark::State& state) {
  auto schema = cachecar::registry::ProtobufSchema::Compile(ReadFile(kDir + "bench_record.proto"));
  if (!schema.ok()) return state.SkipWithError(schema.status().message().c_str());
  std::vector<std::string> records = Records(false, 1000);
  size_t i = 0;
  for (auto _ : state) {
    auto json = (*schema)->Decode(records[i++ % records.size()], 1 << 20);
    benchmark::DoNotOptimize(json);
  }
}
BENCHMARK(BM_ProtobufDecode);

// The bench record's message in a pool of this benchmark's own.
struct Pool {
  pb::DescriptorPool pool{pb::DescriptorPool::generated_pool()};
  const pb::Descriptor* message = nullptr;
  std::unique_ptr<pb::DynamicMessageFactory> factory;
  Pool() {
    std::string text = ReadFile(kDir + "bench_record.proto");
    pb::io::ArrayInputStream in(text.data(), static_cast<int>(text.size()));
    pb::io::Tokenizer tokenizer(&in, nullptr);
    pb::compiler::Parser parser;
    pb::FileDescriptorProto fdp;
    parser.Parse(&tokenizer, &fdp);
    fdp.set_name("bench_record.proto");
    const pb::FileDescriptor* file = pool.BuildFile(fdp);
    if (file != nullptr) message = file->message_type(0);
    factory = std::make_unique<pb::DynamicMessageFactory>(&pool);
  }
};

void BM_ProtobufParseOnly(benchmark::State& state) {
  Pool p;
  if (p.message == nullptr) return state.SkipWithError("the .proto does not build");
  std::vector<std::string> records = Records(false, 1000);
  size_t i = 0;
  for (auto _ : state) {
    const std::string& r = records[i++ % records.size()];
    std::unique_ptr<pb::Message> m(p.factory->GetPrototype(p.message)->New());
    benchmark::DoNotOptimize(m->ParseFromArray(r.data() + 1, static_cast<int>(r.size() - 1)));
  }
}
BENCHMARK(BM_ProtobufParseOnly);

void BM_ProtobufConverter(benchmark::State& state) {
  Pool p;
  if (p.message == nullptr) return state.SkipWithError("the .proto does not build");
  std::unique_ptr<pb::util::TypeResolver> resolver(
      pb::util::NewTypeResolverForDescriptorPool("type.googleapis.com", &p.pool));
  const std::string url = "type.googleapis.com/" + p.message->full_name();
  std::vector<std::string> records = Records(false, 1000);
  size_t i = 0;
  for (auto _ : state) {
    const std::string& r = records[i++ % records.size()];
    std::unique_ptr<pb::Message> m(p.factory->GetPrototype(p.message)->New());
    m->ParseFromArray(r.data() + 1, static_cast<int>(r.size() - 1));
    std::string json;
    benchmark::DoNotOptimize(
        pb::util::BinaryToJsonString(resolver.get(), url, r.substr(1), &json).ok());
  }
}
BENCHMARK(BM_ProtobufConverter);

}  // namespace

BENCHMARK_MAIN();
