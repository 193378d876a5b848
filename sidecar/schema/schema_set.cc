#include "schema/schema_set.h"

#include <openssl/evp.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/log.h"
#include "schema/schema_stats.h"

namespace cachecar::schema {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxFolderFiles = 1000;  // as the validator's own walk (jsonschema_ffi)
constexpr int kMaxFolderDepth = 16;

// Every *.json under `dir` (and its subfolders) by real path, kept inside `root`, each once.
// Kubernetes' "..data" and "..<timestamp>" entries hold the same files again: skipped.
void CollectJsonFiles(const fs::path& root, const fs::path& dir, int depth,
                      std::vector<fs::path>* files) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (files->size() >= kMaxFolderFiles) return;
    std::string name = it->path().filename().string();
    if (name.rfind("..", 0) == 0) continue;
    std::error_code rec;
    fs::path real = fs::canonical(it->path(), rec);
    if (rec) continue;
    auto [root_end, real_it] = std::mismatch(root.begin(), root.end(), real.begin(), real.end());
    if (root_end != root.end()) continue;  // a link out of the folder: never read
    if (fs::is_directory(real, rec)) {
      if (depth < kMaxFolderDepth) CollectJsonFiles(root, real, depth + 1, files);
    } else if (it->path().extension() == ".json") {
      files->push_back(real);
    }
  }
}

}  // namespace

namespace {

// The schema file, then every *.json file of its folder, each once.
std::vector<fs::path> SchemaFolderFiles(const std::string& schema_path) {
  std::error_code ec;
  fs::path file = fs::absolute(schema_path, ec);
  if (ec) return {};
  fs::path root = fs::canonical(file.parent_path(), ec);
  if (ec) return {};
  std::vector<fs::path> files;
  CollectJsonFiles(root, root, 0, &files);
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  files.insert(files.begin(), file);
  return files;
}

std::string ReadForDigest(const fs::path& f) {
  std::error_code fec;
  // Never opened: a FIFO would block the watcher. Its presence is the change (the
  // validator refuses it, naming it).
  if (!fs::is_regular_file(f, fec)) return "\xff not a regular file";
  std::ifstream in(f, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return in ? ss.str() : std::string("\xff unreadable");
}

std::string Sha256(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(digest), len);
}

}  // namespace

std::string FingerprintSchemaFolder(const std::string& schema_path) {
  std::vector<fs::path> files = SchemaFolderFiles(schema_path);
  if (files.empty()) return {};
  std::string all;
  for (const auto& f : files) {
    std::string name = f.string();
    all.append(name.data(), name.size() + 1);
    all += Sha256(ReadForDigest(f));
  }
  return Sha256(all);
}

std::string SchemaContentFingerprint(const std::string& schema_path) {
  std::vector<fs::path> files = SchemaFolderFiles(schema_path);
  if (files.empty()) return {};
  std::vector<std::string> others;
  for (size_t i = 1; i < files.size(); ++i) others.push_back(Sha256(ReadForDigest(files[i])));
  std::sort(others.begin(), others.end());
  std::string all = Sha256(ReadForDigest(files[0]));
  for (const auto& d : others) all += d;
  return Sha256(all);
}

CompileOptions CompileOptionsFor(const config::TopicConfig& topic,
                                 const config::SchemasConfig& schemas) {
  CompileOptions o;
  o.backtracking_patterns = topic.schema_patterns == config::SchemaPatterns::kBacktracking;
  o.backtrack_limit = schemas.backtrack_limit;
  o.backtracking_max_string_bytes = schemas.backtracking_max_string_bytes;
  o.assert_formats = topic.schema_formats == config::SchemaFormats::kAssert;
  return o;
}

std::vector<TopicSchema> TopicSchemasOf(const config::Config& cfg) {
  std::vector<TopicSchema> out;
  for (const auto& t : cfg.topics) {
    out.push_back({t.name, t.schema_path, CompileOptionsFor(t, cfg.schemas)});
  }
  return out;
}

std::vector<TopicSchema> EntrySchemasOf(const config::Config& cfg) {
  std::vector<TopicSchema> out;
  for (const auto& t : cfg.topics) {
    out.push_back({t.name + ":entry", t.entry_schema_path, CompileOptionsFor(t, cfg.schemas)});
  }
  return out;
}

Result<std::unique_ptr<SchemaSet>> SchemaSet::Load(std::vector<TopicSchema> topics,
                                                   prometheus::Registry* registry) {
  std::unique_ptr<SchemaSet> set(new SchemaSet());
  const SchemaStats stats = SchemaStats::Register(*registry);
  auto& reloads = *stats.reloads;
  auto& failing = *stats.reload_failing;
  for (auto& t : topics) {
    Slot slot;
    slot.source = std::move(t);
    if (!slot.source.path.empty()) {
      slot.fingerprint = FingerprintSchemaFolder(slot.source.path);
      slot.content_fingerprint = SchemaContentFingerprint(slot.source.path);
      Result<std::shared_ptr<const JsonSchema>> s = 
          JsonSchema::CompileFile(slot.source.path, slot.source.options);
      if (!s.ok()) {
        return Status(Code::kInvalidArgument,
                      "topic " + slot.source.topic + ": schema " + s.status().message(),
                      "SCHEMA_INVALID")
            .With("topic", slot.source.topic);
      }
      slot.current = *s;
      slot.reloaded = &reloads.Add({{"topic", slot.source.topic}, {"result", "ok"}});
      slot.refused = &reloads.Add({{"topic", slot.source.topic}, {"result", "refused"}});
      slot.failing = &failing.Add({{"topic", slot.source.topic}});
      log::Info("schema loaded", {{"topic", slot.source.topic},
                                  {"schema", slot.source.path},
                                  {"draft", std::string(slot.current->draft())}});
    }
    set->slots_.push_back(std::move(slot));
  }
  return set;
}

SchemaSet::~SchemaSet() { Stop(); }

std::shared_ptr<const JsonSchema> SchemaSet::Get(size_t topic) const {
  std::lock_guard<std::mutex> lock(mu_);
  return topic < slots_.size() ? slots_[topic].current : nullptr;
}

std::string SchemaSet::ContentFingerprint(size_t topic) const {
  std::lock_guard<std::mutex> lock(mu_);
  return topic < slots_.size() ? slots_[topic].content_fingerprint : std::string();
}

SchemaSet::ReloadResult SchemaSet::Reload() {
  std::lock_guard<std::mutex> reload_lock(reload_mu_);
  ReloadResult result;
  for (auto& slot : slots_) {
    if (slot.source.path.empty()) continue;
    std::string fp = FingerprintSchemaFolder(slot.source.path);
    if (fp.empty() || fp == slot.fingerprint) continue;
    slot.fingerprint = fp;
    std::string content_fp = SchemaContentFingerprint(slot.source.path);
    Result<std::shared_ptr<const JsonSchema>> s = 
          JsonSchema::CompileFile(slot.source.path, slot.source.options);
    if (!s.ok()) {
      ++result.refused;
      slot.refused->Increment();
      slot.failing->Set(1);
      log::Error("new schema refused; the previous one stays in force",
                 {{"topic", slot.source.topic}, {"schema", slot.source.path},
                  {"error", s.status().message()}});
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      slot.current = *s;
      slot.content_fingerprint = std::move(content_fp);
    }
    ++result.replaced;
    slot.reloaded->Increment();
    slot.failing->Set(0);
    log::Info("schema reloaded", {{"topic", slot.source.topic}, {"schema", slot.source.path},
                                  {"draft", std::string((*s)->draft())}});
  }
  return result;
}

void SchemaSet::StartWatching(std::chrono::milliseconds interval) {
  if (interval.count() <= 0 || watcher_.joinable()) return;
  watcher_ = std::thread([this, interval] {
    std::unique_lock<std::mutex> lock(stop_mu_);
    while (!stop_cv_.wait_for(lock, interval, [this] { return stopping_; })) {
      lock.unlock();
      Reload();
      lock.lock();
    }
  });
}

void SchemaSet::Stop() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

}  // namespace cachecar::schema
