#include "schema/schema_set.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "test_util.h"

namespace cachecar::schema {
namespace {

void WriteFile(const std::string& path, const std::string& text) {
  // As a ConfigMap update does: write aside, then rename over.
  std::ofstream(path + ".tmp") << text;
  std::filesystem::rename(path + ".tmp", path);
}

double Value(prometheus::Registry& registry, const std::string& name,
             const std::map<std::string, std::string>& labels) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& m : family.metric) {
      std::map<std::string, std::string> got;
      for (const auto& l : m.label) got[l.name] = l.value;
      if (got == labels) return family.type == prometheus::MetricType::Counter ? m.counter.value
                                                                               : m.gauge.value;
    }
  }
  return -1;
}

class SchemaSetTest : public ::testing::Test {
 protected:
  std::unique_ptr<SchemaSet> LoadOne() {
    auto set = SchemaSet::Load({{"plain", ""}, {"users", path_}}, &registry_);
    EXPECT_TRUE(set.ok()) << set.status().ToString();
    return set.ok() ? std::move(*set) : nullptr;
  }
  testing::TempDir dir_;
  std::string path_ = dir_.path() + "/user.json";
  std::string name_path_ = dir_.path() + "/name.json";
  prometheus::Registry registry_;
};

TEST_F(SchemaSetTest, TopicWithoutSchemaHasNone) {
  WriteFile(path_, R"({"type":"object"})");
  auto set = LoadOne();
  EXPECT_EQ(set->Get(0), nullptr);
  EXPECT_NE(set->Get(1), nullptr);
  EXPECT_EQ(set->Get(7), nullptr);
}

TEST_F(SchemaSetTest, BrokenSchemaAtStartNamesTopicAndFile) {
  WriteFile(path_, R"({"type":"object","requried":["id"]})");
  auto set = SchemaSet::Load({{"users", path_}}, &registry_);
  ASSERT_FALSE(set.ok());
  EXPECT_NE(set.status().message().find("topic users"), std::string::npos);
  EXPECT_NE(set.status().message().find(path_), std::string::npos);
  EXPECT_NE(set.status().message().find("requried"), std::string::npos);
}

TEST_F(SchemaSetTest, ChangedFileIsSwappedInAndOldHoldersKeepTheirs) {
  WriteFile(path_, R"({"required":["id"]})");
  auto set = LoadOne();
  auto before = set->Get(1);
  EXPECT_EQ(before->Check(R"({"id":1})"), Verdict::kValid);

  EXPECT_EQ(set->Reload().replaced, 0);  // unchanged
  WriteFile(path_, R"({"required":["id","email"]})");
  SchemaSet::ReloadResult r = set->Reload();
  EXPECT_EQ(r.replaced, 1);
  EXPECT_EQ(set->Get(1)->Check(R"({"id":1})"), Verdict::kInvalid);
  EXPECT_EQ(before->Check(R"({"id":1})"), Verdict::kValid);  // still usable
  EXPECT_EQ(Value(registry_, "cachecar_schema_reloads_total", {{"topic", "users"}, {"result", "ok"}}), 1);
}

TEST_F(SchemaSetTest, BrokenNewVersionIsRefusedAndOldStays) {
  WriteFile(path_, R"({"required":["id"]})");
  auto set = LoadOne();
  WriteFile(path_, R"({"required":["id"], "maxLenght": 3})");
  SchemaSet::ReloadResult r = set->Reload();
  EXPECT_EQ(r.refused, 1);
  EXPECT_EQ(set->Get(1)->Check(R"({"id":1})"), Verdict::kValid);
  EXPECT_EQ(set->Get(1)->Check(R"({})"), Verdict::kInvalid);
  EXPECT_EQ(Value(registry_, "cachecar_schema_reload_failing", {{"topic", "users"}}), 1);
  EXPECT_EQ(Value(registry_, "cachecar_schema_reloads_total", {{"topic", "users"}, {"result", "refused"}}), 1);
  EXPECT_EQ(set->Reload().refused, 0);  // the same broken file is not retried every time

  WriteFile(path_, R"({"required":["email"]})");
  EXPECT_EQ(set->Reload().replaced, 1);
  EXPECT_EQ(Value(registry_, "cachecar_schema_reload_failing", {{"topic", "users"}}), 0);
  EXPECT_EQ(set->Get(1)->Check(R"({"id":1})"), Verdict::kInvalid);
}

TEST_F(SchemaSetTest, ChangeInReferencedFileRecompiles) {
  WriteFile(name_path_, R"({"type":"string","maxLength":10})");
  WriteFile(path_, R"({"properties":{"name":{"$ref":"name.json"}}})");
  auto set = LoadOne();
  EXPECT_EQ(set->Get(1)->Check(R"({"name":"abcdef"})"), Verdict::kValid);
  WriteFile(name_path_, R"({"type":"string","maxLength":3})");
  EXPECT_EQ(set->Reload().replaced, 1);
  EXPECT_EQ(set->Get(1)->Check(R"({"name":"abcdef"})"), Verdict::kInvalid);
}

TEST_F(SchemaSetTest, ChangeInReferencedFileInASubfolderRecompiles) {
  std::filesystem::create_directories(dir_.path() + "/types/deeper");
  WriteFile(dir_.path() + "/types/deeper/code.json", R"({"type":"string","maxLength":10})");
  WriteFile(path_, R"({"properties":{"code":{"$ref":"types/deeper/code.json"}}})");
  auto set = LoadOne();
  EXPECT_EQ(set->Get(1)->Check(R"({"code":"abcd"})"), Verdict::kValid);
  WriteFile(dir_.path() + "/types/deeper/code.json", R"({"type":"string","maxLength":3})");
  EXPECT_EQ(set->Reload().replaced, 1);
  EXPECT_EQ(set->Get(1)->Check(R"({"code":"abcd"})"), Verdict::kInvalid);
  // A broken change there is refused like one in the schema itself.
  WriteFile(dir_.path() + "/types/deeper/code.json", R"({"type":"string","maxLenght":3})");
  EXPECT_EQ(set->Reload().refused, 1);
  EXPECT_EQ(set->Get(1)->Check(R"({"code":"abcd"})"), Verdict::kInvalid);
}

TEST_F(SchemaSetTest, FifoBesideTheSchemaDoesNotBlockAReload) {
  WriteFile(path_, R"({"required":["id"]})");
  auto set = LoadOne();
  ASSERT_EQ(mkfifo((dir_.path() + "/pipe.json").c_str(), 0600), 0);
  SchemaSet::ReloadResult r = set->Reload();  // must return: a FIFO is never opened
  EXPECT_EQ(r.refused, 1);
  EXPECT_EQ(set->Get(1)->Check(R"({})"), Verdict::kInvalid);  // the old schema stays
}

TEST_F(SchemaSetTest, WatcherReloadsByItself) {
  WriteFile(path_, R"({"required":["id"]})");
  auto set = LoadOne();
  WriteFile(path_, R"({"required":["id","email"]})");
  set->StartWatching(std::chrono::milliseconds(10));
  // Wait on the condition (the swap), with a deadline.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (set->Get(1)->Check(R"({"id":1})") == Verdict::kValid &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_EQ(set->Get(1)->Check(R"({"id":1})"), Verdict::kInvalid);
  set->Stop();
}

}  // namespace
}  // namespace cachecar::schema
