// Helpers shared by the JsonSchema unit tests.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include "schema/json_schema.h"

namespace cachecar::schema::schema_test {

// Compiles `text`, failing the test (and returning null) if it does not compile.
inline std::shared_ptr<const JsonSchema> MustCompile(std::string_view text,
                                                     const CompileOptions& options = {}) {
  auto r = JsonSchema::Compile(text, options);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : nullptr;
}

// The message a refused schema gets; fails the test if it compiles or is refused other
// than INVALID_ARGUMENT / SCHEMA_INVALID.
inline std::string CompileError(std::string_view text, const CompileOptions& options = {}) {
  auto r = JsonSchema::Compile(text, options);
  EXPECT_FALSE(r.ok()) << "compiled: " << text.substr(0, 200);
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.status().reason(), "SCHEMA_INVALID");
  return r.status().message();
}

inline void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

}  // namespace cachecar::schema::schema_test
