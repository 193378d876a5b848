// RFC 7396 JSON merge patch, as topics with apply: merge-patch store their records: the
// sidecar's materializer, its Put checks and cachecarctl transform all call this one.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace cachecar::transform {

// `patch` (JSON) merged onto `current` (JSON, or nullopt: the key has no value). Returns
// the result's JSON, or nullopt when it is null (the key is deleted). A `current` that is
// not JSON counts as no value. Numbers are kept as 64-bit integers or doubles; members
// keep their order (new ones after the existing ones).
std::optional<std::string> MergePatch(std::optional<std::string_view> current,
                                      std::string_view patch);

}  // namespace cachecar::transform
