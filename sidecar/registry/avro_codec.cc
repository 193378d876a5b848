#include "registry/avro_codec.h"

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

extern "C" {
struct CcAvro;
CcAvro* cc_avro_compile(const uint8_t* text, size_t text_len, const uint8_t* references,
                        size_t references_len, uint8_t** error, size_t* error_len);
void cc_avro_free(CcAvro* avro);
int32_t cc_avro_decode(const CcAvro* avro, const uint8_t* datum, size_t datum_len,
                       size_t max_output, uint8_t** out, size_t* out_len);
int32_t cc_avro_encode(const CcAvro* avro, const uint8_t* json, size_t json_len, uint8_t** out,
                       size_t* out_len);
void cc_jq_bytes_free(uint8_t* p, size_t len);
}

namespace cachecar::registry {
namespace {

constexpr int32_t kOk = 0;        // avro.rs CC_AVRO_OK
constexpr int32_t kTooLarge = 2;  // CC_AVRO_TOO_LARGE

const uint8_t* Bytes(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// Takes a buffer the Rust side gave.
std::string Take(uint8_t* p, size_t len) {
  std::string s(reinterpret_cast<const char*>(p), len);
  cc_jq_bytes_free(p, len);
  return s;
}

}  // namespace

struct AvroHandle {};  // only ever a CcAvro, cast at the boundary

Result<std::shared_ptr<const AvroSchema>> AvroSchema::Compile(
    std::string_view text, const std::vector<std::pair<std::string, std::string>>& references) {
  nlohmann::json texts = nlohmann::json::array();
  for (const auto& [name, schema] : references) texts.push_back(schema);
  const std::string refs = texts.dump();
  uint8_t* error = nullptr;
  size_t error_len = 0;
  CcAvro* a = cc_avro_compile(Bytes(text), text.size(), Bytes(refs), refs.size(), &error,
                              &error_len);
  if (a == nullptr) {
    return Status(Code::kInvalidArgument, Take(error, error_len), "AVRO_SCHEMA_INVALID");
  }
  return std::shared_ptr<const AvroSchema>(new AvroSchema(reinterpret_cast<AvroHandle*>(a)));
}

AvroSchema::~AvroSchema() { cc_avro_free(reinterpret_cast<CcAvro*>(handle_)); }

Result<std::string> AvroSchema::Decode(std::string_view datum, size_t max_bytes) const {
  uint8_t* out = nullptr;
  size_t out_len = 0;
  int32_t code = cc_avro_decode(reinterpret_cast<const CcAvro*>(handle_), Bytes(datum),
                                datum.size(), max_bytes, &out, &out_len);
  std::string text = Take(out, out_len);
  if (code == kOk) return text;
  if (code == kTooLarge) return Status(Code::kResourceExhausted, text, "VALUE_TOO_LARGE");
  return Status(Code::kInvalidArgument, text, "AVRO_DECODE_FAILED");
}

Result<std::string> AvroSchema::Encode(std::string_view json) const {
  uint8_t* out = nullptr;
  size_t out_len = 0;
  int32_t code = cc_avro_encode(reinterpret_cast<const CcAvro*>(handle_), Bytes(json),
                                json.size(), &out, &out_len);
  std::string data = Take(out, out_len);
  if (code == kOk) return data;
  std::vector<FieldViolation> violations;
  size_t start = 0;
  while (start < data.size()) {
    size_t end = data.find('\n', start);
    if (end == std::string::npos) end = data.size();
    std::string line = data.substr(start, end - start);
    size_t tab = line.find('\t');
    if (tab != std::string::npos) {
      violations.push_back({"value" + line.substr(0, tab), line.substr(tab + 1), "avro"});
    }
    start = end + 1;
  }
  const size_t n = violations.size();
  return Status(Code::kInvalidArgument,
                "the value does not fit the Avro schema (" + std::to_string(n) +
                    (n == 1 ? " violation)" : " violations)"),
                "SCHEMA_VIOLATION", std::move(violations));
}

}  // namespace cachecar::registry
