#include "registry/protobuf_codec.h"

#include <google/protobuf/arena.h>
#include <google/protobuf/compiler/parser.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/type.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/type_resolver.h>
#include <google/protobuf/util/type_resolver_util.h>

#include <array>
#include <cmath>
#include <map>
#include <mutex>
#include <type_traits>
#include <unordered_set>
#include <vector>

#include <absl/strings/escaping.h>
#include <google/protobuf/stubs/strutil.h>

#include "common/log.h"
#include "common/utf8.h"

namespace cachecar::registry {
namespace pb = google::protobuf;
namespace {

constexpr char kTypeUrlPrefix[] = "type.googleapis.com";

// The most message indexes a payload may give (nesting of the named message).
constexpr uint64_t kMaxMessageIndexes = 32;

class Errors : public pb::io::ErrorCollector, public pb::DescriptorPool::ErrorCollector {
 public:
  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    Add("line " + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + message);
  }
  void AddError(const std::string& filename, const std::string& element_name,
                const pb::Message* descriptor, ErrorLocation location,
                const std::string& message) override {
    Add(element_name.empty() ? message : element_name + ": " + message);
  }
  const std::string& text() const { return text_; }

 private:
  void Add(const std::string& m) {
    if (count_++ < 3) text_ += (text_.empty() ? "" : "; ") + m;
  }
  std::string text_;
  int count_ = 0;
};

// Reads a varint at `*pos`; false if the bytes end first or it is over 10 bytes.
bool ReadVarint(std::string_view in, size_t* pos, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*pos >= in.size()) return false;
    const auto b = static_cast<uint8_t>(in[(*pos)++]);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *out = v;
      return true;
    }
  }
  return false;
}

int64_t ZigZag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

// libprotobuf logs some schema problems itself (a .proto without `syntax`): to cachecar's
// structured log, not as bare lines on stderr. Installed on first use; only libprotobuf's
// own messages pass through it (gRPC logs through its own).
void ProtobufLog(pb::LogLevel level, const char* filename, int line, const std::string& message) {
  const char* name = level == pb::LOGLEVEL_INFO      ? "info"
                     : level == pb::LOGLEVEL_WARNING ? "warning"
                                                     : "error";
  log::Warn("libprotobuf", {{"level", name},
                            {"source", std::string(filename) + ":" + std::to_string(line)},
                            {"message", message}});
}

void RouteProtobufLogs() {
  static std::once_flag once;
  std::call_once(once, [] { pb::SetLogHandler(&ProtobufLog); });
}

// The pool's resolver builds a google.protobuf.Type from the descriptors on every call, and
// the JSON converter asks for each message type of every record: the answers are kept.
class CachingResolver : public pb::util::TypeResolver {
 public:
  explicit CachingResolver(const pb::DescriptorPool* pool)
      : inner_(pb::util::NewTypeResolverForDescriptorPool(kTypeUrlPrefix, pool)) {}

  pb::util::Status ResolveMessageType(const std::string& url, pb::Type* out) override {
    return Resolve(url, out, &types_, [&](pb::Type* t) {
      return inner_->ResolveMessageType(url, t);
    });
  }
  pb::util::Status ResolveEnumType(const std::string& url, pb::Enum* out) override {
    return Resolve(url, out, &enums_, [&](pb::Enum* e) {
      return inner_->ResolveEnumType(url, e);
    });
  }

 private:
  template <typename T, typename Ask>
  pb::util::Status Resolve(const std::string& url, T* out, std::map<std::string, T>* cache,
                           Ask ask) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (auto it = cache->find(url); it != cache->end()) {
        *out = it->second;
        return pb::util::Status();
      }
    }
    T resolved;
    pb::util::Status st = ask(&resolved);
    if (!st.ok()) return st;
    *out = resolved;
    std::lock_guard<std::mutex> lock(mu_);
    cache->emplace(url, std::move(resolved));
    return st;
  }

  std::unique_ptr<pb::util::TypeResolver> inner_;
  std::mutex mu_;
  std::map<std::string, pb::Type> types_;  // guarded by mu_
  std::map<std::string, pb::Enum> enums_;  // guarded by mu_
};

Status DecodeFailed(std::string m) {
  return Status(Code::kInvalidArgument, std::move(m), "PROTOBUF_DECODE_FAILED");
}

// Whether PrintJson writes `d` (see ProtobufSchema::printable_); `open` holds the messages
// being decided (a message that holds itself is decided by its other fields).
bool Printable(const pb::Descriptor* d, std::unordered_set<const pb::Descriptor*>* open,
               std::unordered_set<const pb::Descriptor*>* yes,
               std::unordered_set<const pb::Descriptor*>* no) {
  if (yes->count(d) != 0 || open->count(d) != 0) return true;
  if (no->count(d) != 0) return false;
  bool ok = d->extension_range_count() == 0 && d->file()->package() != "google.protobuf";
  open->insert(d);
  for (int i = 0; ok && i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    if (f->is_map() || f->type() == pb::FieldDescriptor::TYPE_GROUP) ok = false;
    if (ok && f->type() == pb::FieldDescriptor::TYPE_MESSAGE) {
      ok = Printable(f->message_type(), open, yes, no);
    }
  }
  open->erase(d);
  (ok ? yes : no)->insert(d);
  return ok;
}

// Bytes AppendJsonString writes as they are (not escaped, and not the lead byte of U+2028
// or U+2029, which are).
constexpr std::array<bool, 256> PlainBytes() {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x100; ++c) plain[c] = true;
  for (int c : {int{'"'}, int{'\\'}, int{'<'}, int{'>'}, 0x7f, 0xe2}) plain[c] = false;
  return plain;
}
constexpr std::array<bool, 256> kPlain = PlainBytes();

void AppendJsonString(std::string_view s, std::string* out) {
  static const char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    size_t run = i;
    while (run < s.size() && kPlain[static_cast<unsigned char>(s[run])]) ++run;
    out->append(s.data() + i, run - i);  // the plain bytes at once
    if (run == s.size()) break;
    i = run;
    const auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      case '<': out->append("\\u003c"); break;  // as libprotobuf's converter writes them
      case '>': out->append("\\u003e"); break;
      default:
        if (c == 0xe2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
            (static_cast<unsigned char>(s[i + 2]) == 0xa8 ||
             static_cast<unsigned char>(s[i + 2]) == 0xa9)) {
          out->append(static_cast<unsigned char>(s[i + 2]) == 0xa8 ? "\\u2028" : "\\u2029");
          i += 2;
        } else if (c == 0xe2) {
          out->push_back(static_cast<char>(c));
        } else {  // a control byte or DEL
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xf]);
        }
    }
    ++i;
  }
  out->push_back('"');
}

template <typename F>
void AppendFloating(F v, std::string* out) {
  if (std::isnan(v)) {
    out->append("\"NaN\"");
  } else if (std::isinf(v)) {
    out->append(v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
  } else if constexpr (std::is_same_v<F, float>) {
    out->append(pb::SimpleFtoa(v));
  } else {
    out->append(pb::SimpleDtoa(v));
  }
}

bool PrintMessage(const pb::Message& m, std::string* out, int depth);

// One value of field `f` (element `i` of a repeated one, else -1). False: the record is
// left to the converter (a string that is not UTF-8, nesting past the parser's limit).
bool PrintValue(const pb::Message& m, const pb::Reflection* r, const pb::FieldDescriptor* f,
                int i, std::string* out, int depth) {
  using F = pb::FieldDescriptor;
  const bool rep = i >= 0;
  switch (f->cpp_type()) {
    case F::CPPTYPE_INT32:
      out->append(std::to_string(rep ? r->GetRepeatedInt32(m, f, i) : r->GetInt32(m, f)));
      return true;
    case F::CPPTYPE_UINT32:
      out->append(std::to_string(rep ? r->GetRepeatedUInt32(m, f, i) : r->GetUInt32(m, f)));
      return true;
    case F::CPPTYPE_INT64:  // 64-bit integers are strings in the proto3 JSON mapping
      out->push_back('"');
      out->append(std::to_string(rep ? r->GetRepeatedInt64(m, f, i) : r->GetInt64(m, f)));
      out->push_back('"');
      return true;
    case F::CPPTYPE_UINT64:
      out->push_back('"');
      out->append(std::to_string(rep ? r->GetRepeatedUInt64(m, f, i) : r->GetUInt64(m, f)));
      out->push_back('"');
      return true;
    case F::CPPTYPE_DOUBLE:
      AppendFloating(rep ? r->GetRepeatedDouble(m, f, i) : r->GetDouble(m, f), out);
      return true;
    case F::CPPTYPE_FLOAT:
      AppendFloating(rep ? r->GetRepeatedFloat(m, f, i) : r->GetFloat(m, f), out);
      return true;
    case F::CPPTYPE_BOOL:
      out->append((rep ? r->GetRepeatedBool(m, f, i) : r->GetBool(m, f)) ? "true" : "false");
      return true;
    case F::CPPTYPE_ENUM: {
      const int n = rep ? r->GetRepeatedEnumValue(m, f, i) : r->GetEnumValue(m, f);
      const pb::EnumValueDescriptor* v = f->enum_type()->FindValueByNumber(n);
      if (v != nullptr) {
        AppendJsonString(v->name(), out);
      } else {
        out->append(std::to_string(n));  // a number this schema does not name
      }
      return true;
    }
    case F::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& s = rep ? r->GetRepeatedStringReference(m, f, i, &scratch)
                                 : r->GetStringReference(m, f, &scratch);
      if (f->type() == F::TYPE_BYTES) {
        out->push_back('"');
        out->append(absl::Base64Escape(s));
        out->push_back('"');
        return true;
      }
      // proto3 strings were checked by the parser; proto2 ones may be any bytes.
      if (f->file()->syntax() != pb::FileDescriptor::SYNTAX_PROTO3 && !IsValidUtf8(s)) {
        return false;
      }
      AppendJsonString(s, out);
      return true;
    }
    case F::CPPTYPE_MESSAGE:
      return PrintMessage(rep ? r->GetRepeatedMessage(m, f, i) : r->GetMessage(m, f), out,
                          depth + 1);
  }
  return false;
}

// The proto3 JSON mapping of a parsed message, as libprotobuf's converter writes it with
// default options (lowerCamelCase names, fields at their default left out, fields in
// number order), but from the message already parsed, not from its bytes again.
bool PrintMessage(const pb::Message& m, std::string* out, int depth) {
  if (depth > 100) return false;
  const pb::Reflection* r = m.GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  out->push_back('{');
  bool first = true;
  for (const pb::FieldDescriptor* f : fields) {
    if (f->is_extension()) return false;
    if (!first) out->push_back(',');
    first = false;
    AppendJsonString(f->json_name(), out);
    out->push_back(':');
    if (f->is_repeated()) {
      out->push_back('[');
      const int n = r->FieldSize(m, f);
      for (int i = 0; i < n; ++i) {
        if (i > 0) out->push_back(',');
        if (!PrintValue(m, r, f, i, out, depth)) return false;
      }
      out->push_back(']');
    } else if (!PrintValue(m, r, f, -1, out, depth)) {
      return false;
    }
  }
  out->push_back('}');
  return true;
}

// One registered .proto as a descriptor: registries give it as text or (as Confluent's
// clients may register it, and Apicurio gives it back) as a base64 FileDescriptorProto.
Status ParseProto(std::string_view text, pb::FileDescriptorProto* proto) {
  Errors errors;
  std::string descriptor;
  const bool base64 = !text.empty() &&
                      text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                             "0123456789+/=") == std::string_view::npos &&
                      absl::Base64Unescape(absl::string_view(text.data(), text.size()), &descriptor) &&
                      proto->ParseFromString(descriptor) &&
                      (proto->message_type_size() > 0 || proto->enum_type_size() > 0);
  if (base64) return Status::Ok();
  proto->Clear();
  pb::io::ArrayInputStream in(text.data(), static_cast<int>(text.size()));
  pb::io::Tokenizer tokenizer(&in, &errors);
  pb::compiler::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.Parse(&tokenizer, proto) || !errors.text().empty()) {
    return Status(Code::kInvalidArgument, "does not parse: " + errors.text(),
                  "PROTOBUF_SCHEMA_INVALID");
  }
  return Status::Ok();
}

}  // namespace

ProtobufSchema::ProtobufSchema() = default;
ProtobufSchema::~ProtobufSchema() = default;

Result<std::shared_ptr<const ProtobufSchema>> ProtobufSchema::Compile(
    std::string_view text, const std::vector<std::pair<std::string, std::string>>& references) {
  RouteProtobufLogs();
  std::shared_ptr<ProtobufSchema> s(new ProtobufSchema());
  // Over the generated pool: the well-known types (google/protobuf/*.proto) resolve.
  s->pool_ = std::make_unique<pb::DescriptorPool>(pb::DescriptorPool::generated_pool());
  for (const auto& [name, ref_text] : references) {
    // A reference to a well-known type (some clients register them) is the built-in one.
    if (s->pool_->FindFileByName(name) != nullptr) continue;
    pb::FileDescriptorProto ref;
    if (Status st = ParseProto(ref_text, &ref); !st.ok()) {
      return Status(Code::kInvalidArgument,
                    "the referenced " + name.substr(0, 200) + " " + st.message(),
                    "PROTOBUF_SCHEMA_INVALID");
    }
    ref.set_name(name);  // what the files that import it call it
    Errors errors;
    if (s->pool_->BuildFileCollectingErrors(ref, &errors) == nullptr) {
      return Status(Code::kInvalidArgument,
                    "the referenced " + name.substr(0, 200) + " does not build: " + errors.text(),
                    "PROTOBUF_SCHEMA_INVALID");
    }
  }
  pb::FileDescriptorProto proto;
  if (Status st = ParseProto(text, &proto); !st.ok()) {
    return Status(Code::kInvalidArgument, "the .proto " + st.message(), "PROTOBUF_SCHEMA_INVALID");
  }
  proto.set_name("cachecar/registry_schema.proto");
  Errors errors;
  s->file_ = s->pool_->BuildFileCollectingErrors(proto, &errors);
  if (s->file_ == nullptr) {
    return Status(Code::kInvalidArgument, "the .proto does not build: " + errors.text(),
                  "PROTOBUF_SCHEMA_INVALID");
  }
  if (s->file_->message_type_count() == 0) {
    return Status(Code::kInvalidArgument, "the .proto defines no message",
                  "PROTOBUF_SCHEMA_INVALID");
  }
  std::unordered_set<const pb::Descriptor*> open, no;
  std::vector<const pb::Descriptor*> all;
  all.reserve(static_cast<size_t>(s->file_->message_type_count()));
  for (int i = 0; i < s->file_->message_type_count(); ++i) all.push_back(s->file_->message_type(i));
  while (!all.empty()) {  // the file's messages and the ones nested in them (what indexes name)
    const pb::Descriptor* d = all.back();
    all.pop_back();
    Printable(d, &open, &s->printable_, &no);
    for (int i = 0; i < d->nested_type_count(); ++i) all.push_back(d->nested_type(i));
  }
  s->factory_ = std::make_unique<pb::DynamicMessageFactory>(s->pool_.get());
  s->resolver_ = std::make_unique<CachingResolver>(s->pool_.get());
  return std::shared_ptr<const ProtobufSchema>(std::move(s));
}

Result<std::string> ProtobufSchema::Encode(std::string_view json) const {
  const pb::Descriptor* d = file_->message_type(0);
  std::unique_ptr<pb::Message> m(factory_->GetPrototype(d)->New());
  pb::util::JsonParseOptions options;  // unknown fields are refused
  pb::util::Status st = pb::util::JsonStringToMessage(
      pb::StringPiece(json.data(), json.size()), m.get(), options);
  if (!st.ok()) {
    return Status(Code::kInvalidArgument,
                  "the value does not fit the Protobuf schema (message " + d->full_name() + ")",
                  "SCHEMA_VIOLATION", {{"value", std::string(st.message()), "protobuf"}});
  }
  std::string out(1, '\0');  // message indexes [0]: the first message
  if (!m->AppendToString(&out)) {
    return Status(Code::kInvalidArgument, "the value does not encode as " + d->full_name(),
                  "SCHEMA_VIOLATION", {{"value", "a required field is missing", "protobuf"}});
  }
  return out;
}

std::string ProtobufSchema::FirstMessage() const {
  return file_->message_type_count() > 0 ? file_->message_type(0)->full_name() : "";
}

Result<std::string> ProtobufSchema::Decode(std::string_view payload, size_t max_bytes) const {
  size_t pos = 0;
  uint64_t raw = 0;
  if (!ReadVarint(payload, &pos, &raw)) return DecodeFailed("the message indexes are cut short");
  const int64_t count = ZigZag(raw);
  std::vector<int64_t> indexes;
  if (count == 0) {
    indexes.push_back(0);
  } else if (count < 0 || static_cast<uint64_t>(count) > kMaxMessageIndexes) {
    return DecodeFailed("the payload gives " + std::to_string(count) + " message indexes");
  } else {
    for (int64_t i = 0; i < count; ++i) {
      if (!ReadVarint(payload, &pos, &raw)) {
        return DecodeFailed("the message indexes are cut short");
      }
      indexes.push_back(ZigZag(raw));
    }
  }
  const pb::Descriptor* d = nullptr;
  for (size_t i = 0; i < indexes.size(); ++i) {
    const int64_t n = indexes[i];
    const int64_t have = d == nullptr ? file_->message_type_count() : d->nested_type_count();
    if (n < 0 || n >= have) {
      return DecodeFailed("message index " + std::to_string(n) + " names no message of the "
                          "schema");
    }
    d = d == nullptr ? file_->message_type(static_cast<int>(n))
                     : d->nested_type(static_cast<int>(n));
  }
  // Parsed as a message first: the JSON converter alone reads malformed bytes into wrong
  // values (a varint cut short as -1, an unknown wire type as nothing). Then the JSON is
  // made from the checked bytes, as MessageToJsonString would after serializing them again.
  std::string_view body = payload.substr(pos);
  // On an arena whose first block is on this stack: a small message's fields cost no
  // allocation each (the parse was most of a record's decoding).
  alignas(std::max_align_t) char first_block[4096];
  pb::ArenaOptions arena_options;
  arena_options.initial_block = first_block;
  arena_options.initial_block_size = sizeof(first_block);
  pb::Arena arena(arena_options);
  pb::Message* m = factory_->GetPrototype(d)->New(&arena);
  if (!m->ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    return DecodeFailed("the payload does not parse as " + d->full_name() +
                        " (malformed, a required field missing, or nested too deep)");
  }
  std::string json;
  const bool printable = printable_.count(d) != 0;
  if (printable) json.reserve(body.size() * 2);
  if (!printable || !PrintMessage(*m, &json, 0)) {
    json.clear();  // left to the converter
    pb::util::JsonPrintOptions options;
    pb::util::Status st = pb::util::BinaryToJsonString(
        resolver_.get(), std::string(kTypeUrlPrefix) + "/" + d->full_name(),
        std::string(body), &json, options);
    if (!st.ok()) {
      return DecodeFailed("the payload does not parse as " + d->full_name() + ": " +
                          std::string(st.message()).substr(0, 300));
    }
  }
  if (json.size() > max_bytes) {
    return Status(Code::kResourceExhausted,
                  "the decoded value is " + std::to_string(json.size()) + " bytes, over " +
                      std::to_string(max_bytes),
                  "VALUE_TOO_LARGE");
  }
  return json;
}

}  // namespace cachecar::registry
