#include "transform/jq_filter.h"

#include <cstdint>
#include <string>

extern "C" {
Jq* cc_jq_compile(const uint8_t* code, size_t code_len, uint8_t** error, size_t* error_len);
void cc_jq_free(Jq* jq);
int32_t cc_jq_is_projection(const Jq* jq);
void cc_jq_bytes_free(uint8_t* p, size_t len);
int32_t cc_jq_run(const Jq* jq, const uint8_t* value, size_t value_len, const uint8_t* key,
                  size_t key_len, int32_t partition, int64_t offset, int64_t timestamp_ms,
                  const uint8_t* headers, size_t headers_len, size_t max_output, uint8_t** out,
                  size_t* out_len);
}

namespace cachecar::transform {

namespace {

const uint8_t* Bytes(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// Takes ownership of the Rust side's bytes.
std::string Take(uint8_t* p, size_t len) {
  std::string s(reinterpret_cast<const char*>(p), len);
  cc_jq_bytes_free(p, len);
  return s;
}

// cc_jq_run's outcomes (jq.rs CC_JQ_*).
enum RunCode : int32_t { kValue = 0, kEmpty = 1, kError = 2, kNotJson = 3, kTooLarge = 4, kMany = 5 };

}  // namespace

cachecar::Result<std::unique_ptr<JqFilter>> JqFilter::Compile(std::string_view code) {
  uint8_t* err = nullptr;
  size_t err_len = 0;
  Jq* jq = cc_jq_compile(Bytes(code), code.size(), &err, &err_len);
  if (jq == nullptr) {
    std::string msg = err != nullptr ? Take(err, err_len) : "does not compile";
    return Status(Code::kInvalidArgument, msg, "TRANSFORM_INVALID");
  }
  return std::unique_ptr<JqFilter>(new JqFilter(jq));
}

JqFilter::~JqFilter() { cc_jq_free(jq_); }

bool JqFilter::is_projection() const { return cc_jq_is_projection(jq_) != 0; }

Result JqFilter::Run(const Input& in, size_t max_output) const {
  uint8_t* out = nullptr;
  size_t out_len = 0;
  const std::string_view headers = in.headers_json.empty() ? "{}" : in.headers_json;
  int32_t code = cc_jq_run(jq_, Bytes(in.value), in.value.size(), Bytes(in.key), in.key.size(),
                           in.partition, in.offset, in.timestamp_ms, Bytes(headers),
                           headers.size(), max_output, &out, &out_len);
  Result r;
  r.text = out != nullptr ? Take(out, out_len) : std::string();
  switch (code) {
    case kValue:
      r.outcome = r.text == "null" ? Outcome::kDelete : Outcome::kValue;
      if (r.outcome == Outcome::kDelete) r.text.clear();
      break;
    case kEmpty: r.outcome = Outcome::kSkip; break;
    case kNotJson: r.outcome = Outcome::kNotJson; break;
    case kTooLarge: r.outcome = Outcome::kTooLarge; break;
    case kMany: r.outcome = Outcome::kManyValues; break;
    default: r.outcome = Outcome::kError; break;
  }
  return r;
}

}  // namespace cachecar::transform
