// The wire format, the client's classing of a registry that does not answer, and the
// schema cache's handling of what an earlier run stored (which may be damaged). Answers of
// the real registry are tested in tests/integration/test_registry.py.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <limits>
#include <random>

#include <google/protobuf/compiler/parser.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/json_util.h>
#include <prometheus/registry.h>

#include "registry/protobuf_codec.h"
#include "registry/registry_client.h"
#include "registry/schema_cache.h"
#include "registry/wire_format.h"

namespace cachecar::registry {
namespace {

TEST(WireFormatTest, ParsesTheHeaderAndEncodesItBack) {
  std::string v = EncodeWireValue(258, R"({"a":1})");
  ASSERT_EQ(v.size(), 5u + 7u);
  EXPECT_EQ(v.substr(0, 5), std::string("\0\0\0\x01\x02", 5));
  auto w = ParseWireValue(v);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->schema_id, 258);
  EXPECT_EQ(w->payload, R"({"a":1})");
  // An empty payload is still the wire format (the schema decides whether it is valid).
  auto empty = ParseWireValue(std::string("\0\0\0\0\x07", 5));
  ASSERT_TRUE(empty.has_value());
  EXPECT_EQ(empty->schema_id, 7);
  EXPECT_TRUE(empty->payload.empty());
}

TEST(WireFormatTest, HostileHeadersAreNotTheWireFormatOrKeepTheirId) {
  EXPECT_FALSE(ParseWireValue("").has_value());
  EXPECT_FALSE(ParseWireValue(std::string("\0\0\0\x01", 4)).has_value());  // short
  EXPECT_FALSE(ParseWireValue(R"({"plain":"json"})").has_value());
  EXPECT_FALSE(ParseWireValue(std::string("\x01\0\0\0\x01{}", 7)).has_value());  // magic 1
  auto neg = ParseWireValue(std::string("\0\xff\xff\xff\xfb{}", 7));
  ASSERT_TRUE(neg.has_value());
  EXPECT_EQ(neg->schema_id, -5);
  EXPECT_EQ(ParseWireValue(EncodeWireValue(INT32_MIN, "x"))->schema_id, INT32_MIN);
  EXPECT_EQ(ParseWireValue(EncodeWireValue(INT32_MAX, "x"))->schema_id, INT32_MAX);
}

// A loopback port with nothing listening on it.
int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

config::Config RegistryConfigAt(const std::string& url) {
  config::Config c;
  c.registry.url = url;
  c.registry.timeout_ms = 2000;
  config::TopicConfig t;
  t.name = "users";
  t.value_format = config::ValueFormat::kRegistry;
  t.registry_subject = "users-value";
  c.topics.push_back(t);
  return c;
}

TEST(RegistryClientTest, ARegistryThatDoesNotAnswerIsUnavailableNotUnknown) {
  config::Config c = RegistryConfigAt("http://127.0.0.1:" + std::to_string(ClosedPort()));
  RegistryClient client(c.registry);
  Result<RegisteredSchema> s = client.SchemaById(1);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kUnavailable) << s.status().ToString();
  EXPECT_EQ(s.status().reason(), "REGISTRY_UNAVAILABLE");
  Result<RegisteredSchema> l = client.LatestOf("users-value");
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), Code::kUnavailable);

  prometheus::Registry metrics;
  SchemaCache cache(c, &client, &metrics);
  auto r = cache.ForRecord(0, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_TRUE(cache.TakeFetched().empty());  // nothing to keep
  // Right after, other misses (other partitions' records, Puts) fail at once, without a
  // request each: a registry that drops packets costs one timeout, not one per partition.
  for (int32_t id = 2; id < 10; ++id) {
    auto again = cache.ForRecord(0, id);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.status().code(), Code::kUnavailable);
  }
  EXPECT_FALSE(cache.ForPuts(0).ok());
  double requests = 0;
  for (const auto& family : metrics.Collect()) {
    if (family.name != "cachecar_registry_requests_total") continue;
    for (const auto& m : family.metric) requests += m.counter.value;
  }
  EXPECT_EQ(requests, 1);
}

TEST(SchemaCacheTest, KeptSchemasOfThisRegistryAreUsedWithoutAskingAndDamagedOnesIgnored) {
  // Nothing listens: every schema used must come from what was kept.
  const std::string url = "http://127.0.0.1:" + std::to_string(ClosedPort());
  config::Config c = RegistryConfigAt(url);
  RegistryClient client(c.registry);
  SchemaCache cache(c, &client, nullptr);
  cache.Seed({
      {url + "#7", R"({"type":"JSON","schema":"{\"type\":\"object\",\"required\":[\"a\"]}"})"},
      {url + "#8", R"({"type":"XML","schema":"<schema/>"})"},  // no such type
      {url + "#14", R"({"type":"AVRO","schema":"\"string\""})"},
      {url + "#15", R"({"type":"AVRO","schema":"{\"type\":\"nope\"}"})"},
      {url + "#9", R"({"type":"JSON","schema":"{\"type\":\"object\"}","references":true})"},
      {url + "#10", R"({"type":"JSON","schema":"{\"type\": 12}"})"},  // does not compile
      {url + "#11", "not json"},
      {url + "#12", R"({"type":"JSON","schema":{"nested":"not a string"}})"},
      {url + "#13", R"({"type":"JSON","schema":"{}","references":"yes"})"},
      {url + "#16", R"({"type":"JSON","schema":"{\"$ref\":\"n.json\"}",)"
                    R"("references":[{"name":"n.json","schema":"{\"type\":\"integer\"}"}]})"},
      {url + "#17", R"({"type":"AVRO","schema":"{\"type\":\"array\",\"items\":\"a.N\"}",)"
                    R"("references":[{"name":"a.N","schema":)"
                    R"("{\"type\":\"fixed\",\"name\":\"N\",\"namespace\":\"a\",\"size\":1}"}]})"},
      {url + "#18", R"({"type":"JSON","schema":"{}","references":[{"name":"n.json"}]})"},
      {url + "#x", R"({"type":"JSON","schema":"{}"})"},
      {url + "#99999999999", R"({"type":"JSON","schema":"{}"})"},
      {"http://other-registry#7", R"({"type":"JSON","schema":"{}"})"},
  });
  auto seven = cache.ForRecord(0, 7);
  ASSERT_TRUE(seven.ok()) << seven.status().ToString();
  ASSERT_NE((*seven)->json, nullptr);
  EXPECT_EQ((*seven)->json->Check(R"({"a":1})"), schema::Verdict::kValid);
  EXPECT_EQ((*seven)->json->Check(R"({"b":1})"), schema::Verdict::kInvalid);
  auto xml = cache.ForRecord(0, 8);
  ASSERT_TRUE(xml.ok());
  EXPECT_EQ((*xml)->json, nullptr);
  EXPECT_EQ((*xml)->avro, nullptr);
  EXPECT_NE((*xml)->unusable.find("type XML"), std::string::npos);
  auto avro = cache.ForRecord(0, 14);
  ASSERT_TRUE(avro.ok());
  ASSERT_NE((*avro)->avro, nullptr);
  auto decoded = (*avro)->avro->Decode(std::string("\x06" "ada", 4), 1000);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, "\"ada\"");
  auto bad_avro = cache.ForRecord(0, 15);
  ASSERT_TRUE(bad_avro.ok());
  EXPECT_NE((*bad_avro)->unusable.find("does not compile"), std::string::npos);
  auto json_refs = cache.ForRecord(0, 16);
  ASSERT_TRUE(json_refs.ok());
  ASSERT_NE((*json_refs)->json, nullptr) << (*json_refs)->unusable;
  EXPECT_EQ((*json_refs)->json->Check("12"), schema::Verdict::kValid);
  EXPECT_EQ((*json_refs)->json->Check("\"12\""), schema::Verdict::kInvalid);
  auto avro_refs = cache.ForRecord(0, 17);
  ASSERT_TRUE(avro_refs.ok());
  ASSERT_NE((*avro_refs)->avro, nullptr) << (*avro_refs)->unusable;
  auto fixed = (*avro_refs)->avro->Decode(std::string("\x02" "A" "\x00", 3), 1000);
  ASSERT_TRUE(fixed.ok()) << fixed.status().ToString();
  EXPECT_EQ(*fixed, "[\"A\"]");
  auto broken = cache.ForRecord(0, 10);
  ASSERT_TRUE(broken.ok());
  EXPECT_NE((*broken)->unusable.find("does not compile"), std::string::npos);
  // Damaged entries were ignored, and so were those kept by a cachecar that did not follow
  // references ("references": true): those ids are asked of the (absent) registry.
  for (int32_t id : {9, 11, 12, 13, 18}) {
    auto r = cache.ForRecord(0, id);
    ASSERT_FALSE(r.ok()) << id;
    EXPECT_EQ(r.status().code(), Code::kUnavailable);
  }
  EXPECT_TRUE(cache.TakeFetched().empty());  // kept ones are not stored again
}

TEST(SchemaCacheTest, SubjectVersionsAreKeptWithTheSchemaAndReadBackWithoutAsking) {
  const std::string url = "http://127.0.0.1:" + std::to_string(ClosedPort());
  config::Config c = RegistryConfigAt(url);
  RegistryClient client(c.registry);
  SchemaCache cache(c, &client, nullptr);
  cache.Seed({
      {url + "#3", R"({"type":"JSON","schema":"{}","versions":[)"
                   R"({"subject":"other","version":9},{"subject":"users-value","version":2}]})"},
      // Damaged items are left out, the schema itself still kept.
      {url + "#4", R"({"type":"JSON","schema":"{}","versions":[{"subject":"users-value"},)"
                   R"({"subject":7,"version":1},{"subject":"users-value","version":-1},)"
                   R"("x",{"subject":"users-value","version":4294967297}]})"},
      {url + "#5", R"({"type":"JSON","schema":"{}","versions":"users-value"})"},
      {url + "#6", R"({"type":"JSON","schema":"{}"})"},  // kept before versions were
  });
  EXPECT_EQ(cache.SubjectVersionFor(0, 3), 2);
  EXPECT_EQ(cache.SubjectVersionFor(0, 4), std::nullopt);
  EXPECT_EQ(cache.SubjectVersionFor(0, 5), std::nullopt);
  EXPECT_EQ(cache.SubjectVersionFor(0, 6), std::nullopt);
  EXPECT_EQ(cache.SubjectVersionFor(0, 77), std::nullopt);  // never fetched: not asked
  for (int32_t id : {3, 4, 5, 6}) EXPECT_TRUE(cache.ForRecord(0, id).ok()) << id;
}

TEST(AvroSchemaTest, HostileDatumsAreRefusedNotBelieved) {
  auto s = AvroSchema::Compile(R"("string")");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  for (const std::string& datum : {
           std::string("\x01", 1),                  // a negative length
           std::string("\x04\xff\xfe", 3),           // not UTF-8
           std::string("\x0a" "ab", 3),              // shorter than it says
           std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11),  // overlong varint
           std::string(),
       }) {
    auto d = (*s)->Decode(datum, 1000);
    EXPECT_FALSE(d.ok()) << "datum of " << datum.size() << " bytes gave " << *d;
  }
  auto arr = AvroSchema::Compile(R"({"type":"array","items":"long"})");
  ASSERT_TRUE(arr.ok());
  // Claims 2^40 items in 7 bytes: refused by the allocation cap, not attempted.
  EXPECT_FALSE((*arr)->Decode(std::string("\x80\x80\x80\x80\x80\x80\x02", 7), 1000).ok());
  auto big = (*s)->Decode(std::string("\x0a" "abcde", 6), 4);  // decodes, but over the cap
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().reason(), "VALUE_TOO_LARGE");
  for (const char* bad : {"", "{", R"({"type":"record","name":"R","fields":[{"name":"x"}]})",
                          R"({"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]})"}) {
    EXPECT_FALSE(AvroSchema::Compile(bad).ok()) << bad;
  }
}

TEST(ProtobufSchemaTest, ParsesTextOrDescriptorsAndRefusesHostileOnes) {
  auto text = ProtobufSchema::Compile(
      "syntax = \"proto3\"; package p; message A { int32 x = 1; message B { string s = 1; } }");
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ((*text)->FirstMessage(), "p.A");
  // [0] as the lone zero byte, then x = 5; [0, 0] (A.B), then s = "hi".
  auto a = (*text)->Decode(std::string("\x00\x08\x05", 3), 1000);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(*a, R"({"x":5})");
  auto b = (*text)->Decode(std::string("\x04\x00\x00\x0a\x02hi", 7), 1000);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(*b, R"({"s":"hi"})");
  for (const std::string& bad : {
           std::string(),                                      // no indexes at all
           std::string("\x02", 1),                             // one index, cut short
           std::string("\x02\x02", 2),                         // index 1: no such message
           std::string("\x04\x00\x02", 3),                     // A's nested 1: none
           std::string("\x41", 1),                             // -33 indexes
           std::string("\x42", 1) + std::string(33, '\0'),     // 33 indexes: over the cap
           std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11),
           std::string("\x00\x08", 2),                         // a field cut short
           std::string("\x00\x0f\x01", 3),                     // wire type 7
       }) {
    auto d = (*text)->Decode(bad, 1000);
    EXPECT_FALSE(d.ok()) << "payload of " << bad.size() << " bytes gave " << *d;
  }
  auto big = (*text)->Decode(std::string("\x00\x08\x05", 3), 4);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().reason(), "VALUE_TOO_LARGE");
  // As Apicurio gives back what Confluent's Python client registered: base64 of a
  // FileDescriptorProto (package p, message M { string s = 1; }).
  auto described = ProtobufSchema::Compile("CgdtLnByb3RvEgFwIg4KAU0SCQoBcxgBIAEoCQ==");
  ASSERT_TRUE(described.ok()) << described.status().ToString();
  EXPECT_EQ((*described)->FirstMessage(), "p.M");
  std::string deep = "syntax = \"proto3\";";
  for (int i = 0; i < 200; ++i) deep += " message M" + std::to_string(i) + " {";
  for (int i = 0; i < 200; ++i) deep += " }";
  for (const std::string& bad : {
           std::string(""), std::string("syntax = \"proto3\";"),   // no message
           std::string("message {"), std::string("\xff\xfe"),
           std::string("import \"other/thing.proto\"; message A { other.T t = 1; }"),
           std::string("QUJD"),  // base64, but not a descriptor: read as .proto text
           deep,
       }) {
    auto c = ProtobufSchema::Compile(bad);
    EXPECT_FALSE(c.ok()) << bad.substr(0, 40);
  }
}


// The direct printer against libprotobuf's own converter, on many random messages of every
// field kind: the JSON must be the same, byte for byte.
TEST(ProtobufSchemaTest, TheDirectPrinterWritesWhatLibprotobufsConverterWrites) {
  const std::string proto = R"(
    syntax = "proto3";
    package d;
    import "google/protobuf/timestamp.proto";
    enum Color { RED = 0; GREEN = 1; BLUE = 2; }
    message All {
      int32 i32 = 1; int64 i64 = 2; uint32 u32 = 3; uint64 u64 = 4; sint32 s32 = 5;
      sint64 s64 = 6; fixed32 f32 = 7; fixed64 f64 = 8; sfixed32 sf32 = 9; sfixed64 sf64 = 10;
      float fl = 11; double db = 12; bool b = 13; string str = 14; bytes raw = 15;
      Color color = 16; Inner inner = 17; optional int32 maybe = 18;
      repeated int64 many_i64 = 19; repeated double many_db = 20; repeated string many_str = 21;
      repeated Inner many_inner = 22; repeated Color many_color = 23; All next = 24;
      oneof pick { string pick_str = 25; Inner pick_inner = 26; }
      string snake_case_name = 27;
    }
    message Inner { string name = 1; repeated float points = 2; }
    message WithMap { map<string, int32> counts = 1; }
    message WithTime { google.protobuf.Timestamp at = 1; string s = 2; }
  )";
  auto schema = ProtobufSchema::Compile(proto);
  ASSERT_TRUE(schema.ok()) << schema.status().ToString();

  // The expectation: the same file in a pool of the test's own, printed by libprotobuf.
  namespace pb = google::protobuf;
  pb::DescriptorPool pool(pb::DescriptorPool::generated_pool());
  pb::FileDescriptorProto fdp;
  {
    pb::io::ArrayInputStream in(proto.data(), static_cast<int>(proto.size()));
    pb::io::Tokenizer tokenizer(&in, nullptr);
    pb::compiler::Parser parser;
    ASSERT_TRUE(parser.Parse(&tokenizer, &fdp));
    fdp.set_name("d.proto");
  }
  ASSERT_NE(pool.BuildFile(fdp), nullptr);
  pb::DynamicMessageFactory factory(&pool);
  std::mt19937_64 rng(20261201);
  auto pick = [&](uint64_t n) { return rng() % n; };
  const std::vector<double> doubles = {0.0, -0.0, 0.1, -2.5, 1e20, 1e-300, 5e-324,
                                       std::numeric_limits<double>::max(),
                                       std::numeric_limits<double>::quiet_NaN(),
                                       std::numeric_limits<double>::infinity(),
                                       -std::numeric_limits<double>::infinity(), 51.5, 1.0 / 3};
  const std::vector<std::string> strings = {
      "", "ada", "quote\" back\\slash", "<tag> & 'x'", "tab\tnew\nline\r\b\f",
      std::string("nul\0in", 6), "\x01\x1f\x7f", "caf\xc3\xa9", "\xe2\x80\xa8\xe2\x80\xa9",
      "\xf0\x9f\x98\x80 emoji", "/slash"};
  std::function<void(pb::Message*, int)> fill = [&](pb::Message* m, int depth) {
    const pb::Reflection* r = m->GetReflection();
    const pb::Descriptor* d = m->GetDescriptor();
    for (int i = 0; i < d->field_count(); ++i) {
      const pb::FieldDescriptor* f = d->field(i);
      if (pick(3) == 0) continue;
      const int count = f->is_repeated() ? static_cast<int>(pick(4)) : 1;
      for (int k = 0; k < count; ++k) {
        using F = pb::FieldDescriptor;
        const bool rep = f->is_repeated();
        switch (f->cpp_type()) {
          case F::CPPTYPE_INT32: {
            int32_t v = static_cast<int32_t>(rng());
            rep ? r->AddInt32(m, f, v) : r->SetInt32(m, f, pick(2) ? v : 0);
            break;
          }
          case F::CPPTYPE_INT64: {
            int64_t v = static_cast<int64_t>(rng());
            rep ? r->AddInt64(m, f, v) : r->SetInt64(m, f, v);
            break;
          }
          case F::CPPTYPE_UINT32:
            r->SetUInt32(m, f, static_cast<uint32_t>(rng()));
            break;
          case F::CPPTYPE_UINT64:
            r->SetUInt64(m, f, rng());
            break;
          case F::CPPTYPE_DOUBLE: {
            double v = doubles[pick(doubles.size())];
            rep ? r->AddDouble(m, f, v) : r->SetDouble(m, f, v);
            break;
          }
          case F::CPPTYPE_FLOAT: {
            float v = static_cast<float>(doubles[pick(doubles.size())]) *
                      (pick(2) ? 1.0f : 0.3f);
            rep ? r->AddFloat(m, f, v) : r->SetFloat(m, f, v);
            break;
          }
          case F::CPPTYPE_BOOL:
            r->SetBool(m, f, pick(2) == 0);
            break;
          case F::CPPTYPE_ENUM: {
            int v = static_cast<int>(pick(5));  // 3 and 4 name no value
            rep ? r->AddEnumValue(m, f, v) : r->SetEnumValue(m, f, v);
            break;
          }
          case F::CPPTYPE_STRING: {
            std::string v = f->type() == F::TYPE_BYTES ? std::string(pick(9), static_cast<char>(rng()))
                                                       : strings[pick(strings.size())];
            rep ? r->AddString(m, f, v) : r->SetString(m, f, v);
            break;
          }
          case F::CPPTYPE_MESSAGE:
            if (f->message_type()->full_name() == "google.protobuf.Timestamp") {
              pb::Message* t = r->MutableMessage(m, f);
              t->GetReflection()->SetInt64(t, t->GetDescriptor()->field(0), 1700000000);
            } else if (depth < 3) {
              fill(rep ? r->AddMessage(m, f) : r->MutableMessage(m, f), depth + 1);
            }
            break;
        }
      }
    }
  };
  int compared = 0;
  for (const char* type : {"d.All", "d.Inner", "d.WithMap", "d.WithTime"}) {
    const pb::Descriptor* d = pool.FindMessageTypeByName(type);
    ASSERT_NE(d, nullptr);
    const int index = d->index();
    for (int n = 0; n < 500; ++n) {
      std::unique_ptr<pb::Message> m(factory.GetPrototype(d)->New());
      fill(m.get(), 0);
      std::string expected;
      ASSERT_TRUE(pb::util::MessageToJsonString(*m, &expected).ok());
      // Message indexes: [index] (zigzag: 2 * index), or the lone 0 for the first.
      std::string payload = index == 0 ? std::string(1, '\0')
                                       : std::string{'\x02', static_cast<char>(2 * index)};
      payload += m->SerializeAsString();
      auto got = (*schema)->Decode(payload, 1 << 20);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      ASSERT_EQ(*got, expected) << type << " #" << n;
      ++compared;
    }
  }
  EXPECT_EQ(compared, 2000);
}

}  // namespace
}  // namespace cachecar::registry
