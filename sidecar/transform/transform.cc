#include "transform/transform.h"

namespace cachecar::transform {

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kValue: return "value";
    case Outcome::kDelete: return "delete";
    case Outcome::kSkip: return "skip";
    case Outcome::kError: return "transform_error";
    case Outcome::kNotJson: return "invalid_json";
    case Outcome::kTooLarge: return "transform_too_large";
    case Outcome::kManyValues: return "transform_many_values";
    case Outcome::kBudgetExceeded: return "transform_budget_exceeded";
    case Outcome::kCrashed: return "transform_crashed";
  }
  return "unknown";
}

}  // namespace cachecar::transform
