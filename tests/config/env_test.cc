#include <gtest/gtest.h>

#include <map>

#include "config/config.h"

namespace cachecar::config {
namespace {

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(ExpandEnvTest, ReplacesVariables) {
  auto r = ExpandEnv("${A}.${B}", Env({{"A", "ns"}, {"B", "pod-1"}}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "ns.pod-1");
}

TEST(ExpandEnvTest, UsesDefaultWhenUnsetOrEmpty) {
  EXPECT_EQ(*ExpandEnv("${X:-localhost:9092}", Env({})), "localhost:9092");
  EXPECT_EQ(*ExpandEnv("${X:-d}", Env({{"X", ""}})), "d");
  EXPECT_EQ(*ExpandEnv("${X:-d}", Env({{"X", "v"}})), "v");
}

TEST(ExpandEnvTest, DollarDollarIsLiteral) {
  EXPECT_EQ(*ExpandEnv("a$$b", Env({})), "a$b");
  EXPECT_EQ(*ExpandEnv("cost $5", Env({})), "cost $5");
}

TEST(ExpandEnvTest, UnsetVariableIsAnErrorNamingIt) {
  auto r = ExpandEnv("${KAFKA_BOOTSTRAP}", Env({}));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("KAFKA_BOOTSTRAP is not set"), std::string::npos);
}

TEST(ExpandEnvTest, MalformedReferencesAreErrors) {
  EXPECT_FALSE(ExpandEnv("${A", Env({{"A", "x"}})).ok());
  EXPECT_FALSE(ExpandEnv("${}", Env({})).ok());
  EXPECT_FALSE(ExpandEnv("${1A}", Env({})).ok());
  EXPECT_FALSE(ExpandEnv("${A B}", Env({})).ok());
}

TEST(ExpandEnvTest, ValuesAreNotExpandedTwice) {
  EXPECT_EQ(*ExpandEnv("${A}", Env({{"A", "${B}"}, {"B", "no"}})), "${B}");
}

}  // namespace
}  // namespace cachecar::config
