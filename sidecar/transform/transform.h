// What a per-topic transform (a jq filter, README "Transforms and merges") is given and
// what it gives back. Shared by the sandbox (the sidecar's side), the worker process that
// runs filters, and cachecarctl transform.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cachecar::transform {

// One record as the filter sees it: `.` is the value (JSON), the rest are the variables
// $key, $partition, $offset, $timestamp and $headers.
struct Input {
  uint32_t filter = 0;  // which of the sandbox's filters runs on it
  std::string_view key;
  std::string_view value;
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t timestamp_ms = -1;
  // The record's headers as a JSON object, name -> string (null for a header without a
  // value; of repeated names, the last). "{}" when there are none.
  std::string_view headers_json;
};

enum class Outcome : uint8_t {
  kValue = 0,        // `text` is the JSON value to store (JSON as schema::IsJson reads it:
                     // finite numbers, UTF-8 strings and keys, at most 100 levels)
  kDelete = 1,       // the filter gave null: delete the key
  kSkip = 2,         // the filter gave nothing (`empty`): the record changes nothing
  kError = 3,        // the filter failed (`error(...)`, a type error, a value JSON cannot
                     // hold: NaN, bytes, a key that is not a string): `text` says how
  kNotJson = 4,      // the value is not JSON
  kTooLarge = 5,     // its output is over the topic's max_value_bytes
  kManyValues = 6,   // it gave more than one value
  kBudgetExceeded = 7,  // it ran past the per-record time budget and was stopped
  kCrashed = 8,      // the worker died running it (stack or memory limit)
};

const char* OutcomeName(Outcome o);

struct Result {
  Outcome outcome = Outcome::kSkip;
  std::string text;  // the value's JSON (kValue), or what went wrong
};

}  // namespace cachecar::transform
