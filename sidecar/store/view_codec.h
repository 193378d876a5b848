// How a view's entries are laid out (README "Views"). Internal to the store. Pure
// functions; thread-safe.
//
// A view key's value, as served: a JSON array of the topic's entries under that view key,
// by key: [{"key":"u1","value":{...}},...]. Each "value" is the topic's stored JSON text,
// byte for byte (never parsed and printed again, so numbers keep their digits).
//
// A view's reverse table maps an entry of the topic to the view keys it is under, so a
// change of the entry leaves the keys it no longer has: StoreKey(topic key) ->
//   u32 key_len | topic key | (u32 len | view key)*
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cachecar::store {

struct ViewMember {
  std::string key;         // the topic's key
  std::string_view value;  // its value's JSON text
};

// Appends `members` (sorted by key, keys valid UTF-8) as the view value to `out` (cleared).
void EncodeViewValue(const std::vector<ViewMember>& members, std::string* out);
// The members of a view value EncodeViewValue wrote; nullopt if it is not one. The values
// point into `text`.
std::optional<std::vector<ViewMember>> DecodeViewValue(std::string_view text);

void EncodeViewKeys(std::string_view topic_key, const std::vector<std::string>& view_keys,
                    std::string* out);
struct DecodedViewKeys {
  std::string_view topic_key;
  std::vector<std::string_view> view_keys;
};
std::optional<DecodedViewKeys> DecodeViewKeys(std::string_view stored);

}  // namespace cachecar::store
