// cachecarctl: a command line for a running cachecar sidecar. See `cachecarctl --help`.
//
// Exit codes: 0 ok; 1 cachecar unreachable or failed (UNAVAILABLE, INTERNAL, ...);
// 2 bad usage; 3 key not found (get); 4 not ready (status, or a read before catch-up);
// 5 rejected request (unknown topic, invalid argument).
#include <CLI/CLI.hpp>
#include <absl/strings/escaping.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <sstream>

#include "client/client.h"
#include "client/validate.h"
#include "common/utf8.h"
#include "common/version.h"
#include "transform/worker.h"

namespace {

using cachecar::Code;
using nlohmann::json;

enum Exit { kOk = 0, kFailed = 1, kUsage = 2, kNotFound = 3, kNotReady = 4, kRejected = 5 };

// With -o json or jsonl an error is also one JSON object on stdout, so a script that
// parses the output sees why instead of nothing. Set once, from the command line.
bool json_errors = false;

int ExitFor(const cachecar::Status& st) {
  std::fprintf(stderr, "cachecarctl: %s\n", st.ToString().c_str());
  if (!st.reason().empty()) std::fprintf(stderr, "  reason: %s\n", st.reason().c_str());
  if (json_errors) {
    json violations = json::array();
    for (const auto& v : st.violations()) {
      violations.push_back({{"field", v.field}, {"description", v.description}});
    }
    json error{{"code", cachecar::CodeName(st.code())},
               {"reason", st.reason()},
               {"message", st.message()},
               {"violations", violations}};
    std::cout << json{{"error", error}}.dump(-1, ' ', false, json::error_handler_t::replace)
              << std::endl;
  }
  if (st.reason() == "CACHE_NOT_READY") return kNotReady;
  switch (st.code()) {
    case Code::kInvalidArgument:
    case Code::kNotFound:
    case Code::kPermissionDenied:
    case Code::kOutOfRange:
      return kRejected;
    default:
      return kFailed;
  }
}

// A key or value as JSON: a UTF-8 string, or {"base64": ...} for other bytes.
json BytesJson(const std::string& b) {
  if (cachecar::IsValidUtf8(b)) return b;
  return json{{"base64", absl::Base64Escape(b)}};
}

// A value: its JSON, or else its bytes. An original value that is not JSON (a registry
// topic's wire format: a zero byte, the schema id, the payload) is always base64, never
// a string that happens to be UTF-8.
json ValueJson(const std::string& v, bool original) {
  json parsed = json::parse(v, nullptr, false);
  if (!parsed.is_discarded()) return parsed;
  if (original) return json{{"base64", absl::Base64Escape(v)}};
  return BytesJson(v);
}

// RFC 3339 in UTC with milliseconds.
std::string FormatTimestamp(const google::protobuf::Timestamp& t) {
  time_t secs = static_cast<time_t>(t.seconds());
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                t.nanos() / 1000000);
  return buf;
}

// The record's timestamp, or "-" when it had none.
std::string Timestamp(const cachecar::v1::Entry& e) {
  return e.has_kafka_timestamp() ? FormatTimestamp(e.kafka_timestamp()) : "-";
}

json EntryJson(const cachecar::v1::Entry& e, bool original) {
  json j{{"key", BytesJson(e.key())},
         {"value", ValueJson(e.value(), original)},
         {"partition", e.partition()},
         {"offset", e.offset()},
         {"timestamp", e.has_kafka_timestamp() ? json(Timestamp(e)) : json(nullptr)},
         {"revision", e.revision()}};
  if (e.has_schema_id()) j["schema_id"] = e.schema_id();  // registry topics
  if (e.has_subject_version()) j["subject_version"] = e.subject_version();
  return j;
}

std::string Printable(const std::string& b, size_t max) {
  std::string s = cachecar::IsValidUtf8(b) ? b : "base64:" + absl::Base64Escape(b);
  for (char& c : s) {
    if (c == '\n' || c == '\t' || c == '\r') c = ' ';
  }
  if (s.size() > max) s = s.substr(0, max - 3) + "...";
  return s;
}

// Tables print keys whole (they are what one copies from a table to `get`), up to a
// width no terminal would show anyway.
constexpr size_t kMaxKeyWidth = 256;

void PrintJson(const json& j) {
  std::cout << j.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
}

struct WatchArgs {
  std::string topic, prefix, key, store_id;
  bool has_prefix = false, snapshot = false, no_put = false, no_delete = false, prev = false;
  bool quiet_progress = false;
  int64_t from_revision = -1;
  long count = 0;  // events to print before exiting (0: until stopped)
};

// Streams one watch as JSON lines: created, snapshot entries, snapshot_end, events,
// progress, and the final canceled. Exit: 0 after --count events; 1 when the stream or
// the watch ended otherwise (the last line says why and from which revision to resume);
// 5 when the watch was refused as invalid.
int RunWatch(cachecar::client::Client& client, const WatchArgs& a, bool allow_cold,
             bool original) {
  std::unique_ptr<cachecar::client::WatchStream> stream = client.Watch();
  cachecar::v1::WatchRequest req;
  auto* c = req.mutable_create();
  c->set_watch_id(1);
  c->set_topic(a.topic);
  c->set_prefix(a.has_prefix);
  c->set_key(a.has_prefix ? a.prefix : a.key);
  c->set_snapshot(a.snapshot);
  if (a.from_revision >= 0) c->set_resume_revision(static_cast<uint64_t>(a.from_revision));
  c->set_store_id(a.store_id);
  c->set_no_put(a.no_put);
  c->set_no_delete(a.no_delete);
  c->set_prev_entry(a.prev);
  c->set_allow_cold_cache(allow_cold);
  c->set_original_value(original);
  if (!stream->Send(req)) return ExitFor(stream->Finish());
  long events = 0;
  cachecar::v1::WatchResponse r;
  while (stream->Read(&r)) {
    if (r.has_created()) {
      PrintJson({{"type", "CREATED"}, {"store_id", r.created().store_id()},
                 {"revision", r.created().revision()}});
    } else if (r.has_snapshot()) {
      for (const auto& e : r.snapshot().entries()) {
        json j = EntryJson(e, original);
        j["type"] = "SNAPSHOT";
        PrintJson(j);
      }
    } else if (r.has_snapshot_end()) {
      PrintJson({{"type", "SNAPSHOT_END"}, {"revision", r.snapshot_end().revision()}});
    } else if (r.has_progress()) {
      if (!a.quiet_progress) {
        PrintJson({{"type", "PROGRESS"}, {"revision", r.progress().revision()}});
      }
    } else if (r.has_events()) {
      for (const auto& e : r.events().events()) {
        json j = EntryJson(e.entry(), original);
        j["type"] = cachecar::v1::WatchEvent::Type_Name(e.type());
        if (e.type() == cachecar::v1::WatchEvent::DELETE) j.erase("value");
        if (e.has_prev_entry()) j["prev"] = EntryJson(e.prev_entry(), original);
        PrintJson(j);
        if (a.count > 0 && ++events >= a.count) {
          std::cout.flush();
          stream->Cancel();
          stream->Finish();
          return kOk;
        }
      }
    } else if (r.has_canceled()) {
      const auto& x = r.canceled();
      json j{{"type", "CANCELED"},
             {"reason", cachecar::v1::WatchCanceled::Reason_Name(x.reason())},
             {"message", x.message()},
             {"last_revision", x.last_revision()},
             {"store_id", x.store_id()}};
      if (x.compact_revision() > 0) j["compact_revision"] = x.compact_revision();
      PrintJson(j);
      std::cout.flush();
      stream->Cancel();
      stream->Finish();
      std::fprintf(stderr, "cachecarctl: watch ended: %s: %s\n",
                   cachecar::v1::WatchCanceled::Reason_Name(x.reason()).c_str(),
                   x.message().c_str());
      return x.reason() == cachecar::v1::WatchCanceled::INVALID_REQUEST ? kRejected : kFailed;
    }
    std::cout.flush();
  }
  return ExitFor(stream->Finish());
}

}  // namespace

namespace {

int Run(int argc, char** argv) {
  CLI::App app{"cachecarctl: query a cachecar sidecar"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("cachecarctl ") + cachecar::Version() + " (" +
                                        cachecar::Revision() + ")");
  app.fallthrough();  // global options may follow the subcommand
  cachecar::client::ClientOptions opts;
  std::string output = "table";
  int timeout_ms = 5000;
  bool allow_cold = false;
  app.add_option("-a,--address", opts.target,
                 "cachecar gRPC target (host:port or unix:PATH); env CACHECAR_ADDRESS")
      ->envname("CACHECAR_ADDRESS")
      ->capture_default_str();
  app.add_option("-o,--output", output,
                 "table; json (one document: an object, or an array for list and rejected); "
                 "jsonl (one object per line); raw (get: the value bytes only)")
      ->check(CLI::IsMember({"table", "json", "jsonl", "raw"}))
      ->capture_default_str();
  app.add_option("--timeout-ms", timeout_ms, "deadline of each call")
      ->check(CLI::Range(1, 3600000))
      ->capture_default_str();
  app.add_flag("--allow-cold-cache", allow_cold, "read even before the sidecar has caught up");
  bool original = false;
  app.add_flag("--original", original,
               "get, list, watch: values exactly as they were in Kafka (a registry topic's "
               "wire-format bytes) rather than their decoded JSON");
  std::string token_file;
  app.add_option("--token-file", token_file,
                 "file holding the sidecar's token (grpc.auth_token_file); env "
                 "CACHECAR_TOKEN_FILE")
      ->envname("CACHECAR_TOKEN_FILE");

  std::string topic, key, prefix;
  std::string value, value_file;
  int limit = 0;
  auto* get = app.add_subcommand("get", "print the latest value of a key");
  get->add_option("topic", topic, "topic")->required();
  get->add_option("key", key, "key")->required();
  auto* list = app.add_subcommand("list", "list entries by key prefix");
  list->add_option("topic", topic, "topic")->required();
  list->add_option("-p,--prefix", prefix, "only keys starting with this");
  list->add_option("-n,--limit", limit, "print at most this many entries (0: all)")
      ->check(CLI::NonNegativeNumber);
  // validate and transform read the sidecar's config and a value, offline.
  std::string config_path;
  auto add_offline = [&](CLI::App* cmd, const char* value_help) {
    cmd->add_option("-c,--config", config_path, "the sidecar's configuration file")
        ->envname("CACHECAR_CONFIG")
        ->required();
    cmd->add_option("topic", topic, "topic")->required();
    auto* positional = cmd->add_option("value", value, value_help);
    cmd->add_option("-f,--file", value_file, "read the value from this file")
        ->excludes(positional);
  };
  auto* validate = app.add_subcommand(
      "validate", "check a value against a topic's rules offline, as the sidecar's Put would");
  add_offline(validate, "the value (or --file, or - for stdin)");
  auto* transform = app.add_subcommand(
      "transform", "show offline what a record's value would make of its key: the topic's "
                   "transform, merge-patch and entry_schema, as the sidecar applies them");
  add_offline(transform, "the record's value (or --file, or - for stdin)");
  cachecar::client::TransformOptions transform_opts;
  transform->add_option("-k,--key", transform_opts.key, "the record's key ($key)");
  std::string current;
  auto* current_opt = transform->add_option(
      "--current", current, "merge-patch: the key's value now, to merge onto (default none)");
  auto* health = app.add_subcommand(
      "health", "gRPC health check (exit 0 SERVING, 4 not): what Kubernetes probes run");
  std::string health_service;
  health->add_option("service", health_service,
                     "\"\" (default) for the sidecar, topic/NAME for one topic");
  auto* status = app.add_subcommand("status", "readiness and catch-up progress per partition");
  int wait_ms = 0;
  status->add_option("--wait-ms", wait_ms,
                     "first wait up to this long for the sidecar to be ready (WaitReady)")
      ->check(CLI::Range(0, 3600000));
  bool ack_only = false;
  auto* put = app.add_subcommand(
      "put", "write a value through the topic; waits until this sidecar serves it");
  put->add_option("topic", topic, "topic")->required();
  put->add_option("key", key, "key")->required();
  auto* value_opt = put->add_option("value", value, "the value (or --file, or - for stdin)");
  put->add_option("-f,--file", value_file, "read the value from this file")
      ->excludes(value_opt)
      ->check(CLI::ExistingFile);
  put->add_flag("--ack-only", ack_only, "return once Kafka acknowledges, without waiting");
  auto* del = app.add_subcommand("delete", "delete a key (produce a tombstone)");
  del->add_option("topic", topic, "topic")->required();
  del->add_option("key", key, "key")->required();
  del->add_flag("--ack-only", ack_only, "return once Kafka acknowledges, without waiting");
  auto* rejected = app.add_subcommand(
      "rejected", "the latest records of a topic that were not served, and why");
  rejected->add_option("topic", topic, "topic")->required();
  auto* snapshot = app.add_subcommand("snapshot", "snapshots of the sidecar's store");
  snapshot->require_subcommand(1);
  auto* snapshot_save = snapshot->add_subcommand(
      "save", "save a consistent copy of the store to FILE (for cachecar --bootstrap-from)");
  std::string snapshot_file;
  int transfer_timeout_ms = 600000;
  snapshot_save->add_option("file", snapshot_file, "where to write it")->required();
  snapshot_save->add_option("--transfer-timeout-ms", transfer_timeout_ms,
                            "deadline of the whole transfer")
      ->check(CLI::Range(1, 86400000))
      ->capture_default_str();
  WatchArgs wa;
  auto* watch = app.add_subcommand(
      "watch", "stream changes of a key or key prefix as JSON lines (Ctrl-C to stop)");
  watch->add_option("topic", wa.topic, "topic")->required();
  auto* watch_key = watch->add_option("key", wa.key, "one key to watch");
  watch->add_option("-p,--prefix", wa.prefix, "every key starting with this (\"\" : all)")
      ->excludes(watch_key);
  auto* from = watch->add_option("--from-revision", wa.from_revision,
                                 "resume: print the changes after this revision (the last "
                                 "one you saw)")
                   ->check(CLI::NonNegativeNumber);
  watch->add_option("--store-id", wa.store_id,
                    "with --from-revision: the store the revision came from (refused if "
                    "the store was rebuilt)");
  watch->add_flag("--snapshot", wa.snapshot,
                  "print the current entries first, then SNAPSHOT_END, then changes")
      ->excludes(from);
  watch->add_flag("--no-put", wa.no_put, "leave out puts");
  watch->add_flag("--no-delete", wa.no_delete, "leave out deletes");
  watch->add_flag("--prev", wa.prev, "include each change's previous entry");
  watch->add_flag("--no-progress", wa.quiet_progress, "do not print PROGRESS lines");
  watch->add_option("-n,--count", wa.count,
                    "exit after this many change events (PUT or DELETE; snapshot entries and "
                    "progress do not count)")
      ->check(CLI::NonNegativeNumber);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kOk : kUsage;
  }
  // jsonl differs from json only where there are many objects (list, rejected).
  const bool as_json = output == "json" || output == "jsonl";
  json_errors = as_json;
  auto read_value = [&](CLI::App* cmd) -> bool {
    if (!value_file.empty()) {
      std::ifstream in(value_file, std::ios::binary);
      if (!in) {
        std::fprintf(stderr, "cachecarctl: cannot read %s\n", value_file.c_str());
        return false;
      }
      std::stringstream ss;
      ss << in.rdbuf();
      value = ss.str();
    } else if (value == "-" || cmd->count("value") == 0) {
      std::stringstream ss;
      ss << std::cin.rdbuf();
      value = ss.str();
    }
    return true;
  };
  if (transform->parsed()) {
    if (!read_value(transform)) return kUsage;
    if (current_opt->count() > 0) transform_opts.current = std::optional<std::string>(current);
    return cachecar::client::RunTransform(config_path, topic, value, transform_opts,
                                          as_json ? "json" : output);
  }
  if (validate->parsed()) {
    if (!read_value(validate)) return kUsage;
    return cachecar::client::RunValidate(config_path, topic, value, as_json ? "json" : output);
  }
  opts.timeout = std::chrono::milliseconds(timeout_ms);
  if (!token_file.empty()) {
    std::ifstream in(token_file, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cachecarctl: cannot read token file %s\n", token_file.c_str());
      return kUsage;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    opts.auth_token = ss.str();
    while (!opts.auth_token.empty() &&
           (opts.auth_token.back() == '\n' || opts.auth_token.back() == '\r')) {
      opts.auth_token.pop_back();
    }
  }
  cachecar::client::Client client(opts);
  cachecar::client::ReadOptions ro{allow_cold};
  ro.original_value = original;

  if (snapshot_save->parsed()) {
    auto r = client.SaveSnapshot(snapshot_file, std::chrono::milliseconds(transfer_timeout_ms));
    if (!r.ok()) return ExitFor(r.status());
    uint64_t keys = 0;
    for (const auto& t : r->topics()) keys += t.keys();
    if (as_json) {
      PrintJson(json{{"file", snapshot_file},
                     {"revision", r->revision()},
                     {"bytes", r->data_bytes()},
                     {"topics", r->topics_size()},
                     {"keys", keys}});
    } else {
      std::printf("saved %s: revision %llu, %d topics, %llu keys, %llu bytes\n",
                  snapshot_file.c_str(), static_cast<unsigned long long>(r->revision()),
                  r->topics_size(), static_cast<unsigned long long>(keys),
                  static_cast<unsigned long long>(r->data_bytes()));
    }
    return kOk;
  }
  if (watch->parsed()) {
    wa.has_prefix = watch->count("--prefix") > 0;
    if (!wa.has_prefix && watch->count("key") == 0) {
      std::fprintf(stderr, "cachecarctl: watch needs a key or --prefix (\"\" for all keys)\n");
      return kUsage;
    }
    return RunWatch(client, wa, allow_cold, original);
  }
  if (get->parsed()) {
    auto r = client.Get(topic, key, ro);
    if (!r.ok()) return ExitFor(r.status());
    if (!r->found()) {
      if (as_json) PrintJson(json{{"found", false}, {"key", BytesJson(key)}});
      std::fprintf(stderr, "cachecarctl: key not found in %s\n", topic.c_str());
      return kNotFound;
    }
    const auto& e = r->entry();
    if (as_json) {
      json j = EntryJson(e, original);
      j["found"] = true;
      PrintJson(j);
    } else if (output == "raw") {
      std::fwrite(e.value().data(), 1, e.value().size(), stdout);
    } else {
      std::printf("key        %s\nvalue      %s\npartition  %d\noffset     %lld\n"
                  "timestamp  %s\nrevision   %llu\n",
                  Printable(e.key(), 4096).c_str(), Printable(e.value(), 1 << 20).c_str(),
                  e.partition(), static_cast<long long>(e.offset()),
                  Timestamp(e).c_str(),
                  static_cast<unsigned long long>(e.revision()));
    }
    return kOk;
  }
  if (list->parsed()) {
    auto r = client.ListAll(topic, prefix, static_cast<size_t>(limit), ro);
    if (!r.ok()) return ExitFor(r.status());
    if (output == "json") {
      json all = json::array();
      for (const auto& e : *r) all.push_back(EntryJson(e, original));
      PrintJson(all);
    } else if (output == "jsonl" || output == "raw") {
      for (const auto& e : *r) PrintJson(EntryJson(e, original));
    } else {
      size_t width = 3;
      for (const auto& e : *r) width = std::max(width, Printable(e.key(), kMaxKeyWidth).size());
      const int w = static_cast<int>(width);
      std::printf("%-*s %-9s %-10s %-9s %s\n", w, "KEY", "PARTITION", "OFFSET", "REVISION",
                  "VALUE");
      for (const auto& e : *r) {
        std::printf("%-*s %-9d %-10lld %-9llu %s\n", w, Printable(e.key(), kMaxKeyWidth).c_str(),
                    e.partition(), static_cast<long long>(e.offset()),
                    static_cast<unsigned long long>(e.revision()),
                    Printable(e.value(), 80).c_str());
      }
    }
    return kOk;
  }
  if (put->parsed() || del->parsed()) {
    if (put->parsed() && !read_value(put)) return kUsage;
    int32_t partition = 0;
    int64_t offset = 0;
    uint64_t revision = 0;
    bool applied = false;
    if (put->parsed()) {
      auto r = client.Put(topic, key, value, ack_only);
      if (!r.ok()) return ExitFor(r.status());
      partition = r->partition();
      offset = r->offset();
      revision = r->store_revision();
      applied = r->applied();
    } else {
      auto r = client.Delete(topic, key, ack_only);
      if (!r.ok()) return ExitFor(r.status());
      partition = r->partition();
      offset = r->offset();
      revision = r->store_revision();
      applied = r->applied();
    }
    if (as_json || output == "raw") {
      PrintJson({{"partition", partition}, {"offset", offset}, {"applied", applied},
                 {"store_revision", revision}});
    } else {
      std::printf("partition  %d\noffset     %lld\napplied    %s\nrevision   %llu\n", partition,
                  static_cast<long long>(offset), applied ? "yes" : "no (ack only)",
                  static_cast<unsigned long long>(revision));
    }
    return kOk;
  }
  if (rejected->parsed()) {
    auto r = client.ListRejectedRecords(topic);
    if (!r.ok()) return ExitFor(r.status());
    if (output != "table") {
      json all = json::array();
      for (const auto& x : r->records()) {
        all.push_back({{"partition", x.partition()}, {"offset", x.offset()},
                       {"key", x.has_key() ? BytesJson(x.key()) : json(nullptr)},
                       {"reason", x.reason()}, {"detail", x.detail()}, {"action", x.action()},
                       {"reject_time", FormatTimestamp(x.reject_time())}});
      }
      if (output == "json") {
        PrintJson(all);
      } else {
        for (const auto& x : all) PrintJson(x);
      }
    } else {
      auto key_of = [](const cachecar::v1::RejectedRecord& x) {
        return x.has_key() ? Printable(x.key(), kMaxKeyWidth) : std::string("(none)");
      };
      size_t width = 3;
      for (const auto& x : r->records()) width = std::max(width, key_of(x).size());
      const int w = static_cast<int>(width);
      std::printf("%-9s %-10s %-*s %-18s %-13s %s\n", "PARTITION", "OFFSET", w, "KEY", "REASON",
                  "ACTION", "DETAIL");
      for (const auto& x : r->records()) {
        std::printf("%-9d %-10lld %-*s %-18s %-13s %s\n", x.partition(),
                    static_cast<long long>(x.offset()), w, key_of(x).c_str(), x.reason().c_str(),
                    x.action().c_str(), x.detail().c_str());
      }
    }
    return kOk;
  }
  if (health->parsed()) {
    auto r = client.CheckHealth(health_service);
    if (!r.ok()) return ExitFor(r.status());
    std::printf("%s\n", *r ? "SERVING" : "NOT_SERVING");
    return *r ? kOk : kNotReady;
  }
  if (status->parsed()) {
    if (wait_ms > 0) {
      auto w = client.WaitReady(std::chrono::milliseconds(wait_ms));
      if (!w.ok()) return ExitFor(w.status());
    }
    auto r = client.GetStatus();
    if (!r.ok()) return ExitFor(r.status());
    if (as_json || output == "raw") {
      json topics = json::array();
      for (const auto& t : r->topics()) {
        json parts = json::array();
        for (const auto& p : t.partitions()) {
          parts.push_back({{"partition", p.partition()},
                           {"applied_offset", p.applied_offset()},
                           {"start_end_offset", p.start_end_offset()},
                           {"end_offset", p.end_offset()},
                           {"lag", p.lag()},
                           {"ready", p.ready()},
                           {"halted_reason", p.halted_reason()}});
        }
        json topic = {{"topic", t.topic()},
                      {"ready", t.ready()},
                      {"required", t.required()},
                      {"not_ready_reason", t.not_ready_reason()},
                      {"key_count", t.key_count()},
                      {"records_applied", t.records_applied()},
                      {"records_rejected", t.records_rejected()},
                      {"partitions", parts}};
        if (t.has_stale()) {
          topic["stale"] = {{"caught_up_at", FormatTimestamp(t.stale().caught_up_at())},
                            {"reason", t.stale().reason()}};
        }
        if (!t.view_of().empty()) topic["view_of"] = t.view_of();
        if (t.schema_ids_size() > 0) {
          json ids = json::array();
          for (const auto& s : t.schema_ids()) {
            ids.push_back({{"schema_id", s.schema_id()}, {"records_applied", s.records_applied()}});
          }
          topic["schema_ids"] = std::move(ids);
        }
        topics.push_back(std::move(topic));
      }
      PrintJson({{"ready", r->ready()},
                 {"not_ready_reason", r->not_ready_reason()},
                 {"store_id", r->store_id()},
                 {"store_revision", r->store_revision()},
                 {"topics", topics}});
    } else {
      std::printf("ready: %s   store: %s   revision: %llu\n", r->ready() ? "yes" : "no",
                  r->store_id().c_str(), static_cast<unsigned long long>(r->store_revision()));
      if (!r->ready()) std::printf("not ready: %s\n", r->not_ready_reason().c_str());
      std::printf("\n");
      std::printf("%-24s %-9s %-12s %-12s %-12s %-8s %-5s\n", "TOPIC", "PARTITION", "APPLIED",
                  "READY_AT", "END", "LAG", "READY");
      for (const auto& t : r->topics()) {
        if (!t.view_of().empty()) continue;  // a view has no partitions of its own
        if (t.partitions_size() == 0) {
          std::printf("%-24s %-9s %-12s %-12s %-12s %-8s %-5s\n", t.topic().c_str(), "-", "-",
                      "-", "-", "-", "no (topic not assigned yet)");
        }
        for (const auto& p : t.partitions()) {
          std::printf("%-24s %-9d %-12lld %-12lld %-12lld %-8lld %-5s\n", t.topic().c_str(),
                      p.partition(), static_cast<long long>(p.applied_offset()),
                      static_cast<long long>(p.start_end_offset()),
                      static_cast<long long>(p.end_offset()), static_cast<long long>(p.lag()),
                      p.ready() ? "yes" : "no");
        }
      }
      std::printf("\n%-24s %-10s %-14s %-14s %s\n", "TOPIC", "KEYS", "APPLIED", "REJECTED",
                  "STATE");
      for (const auto& t : r->topics()) {
        std::string state = t.ready() ? "ready" : "not ready: " + t.not_ready_reason();
        if (t.has_stale()) {
          state += " (stale: serving the stored state, caught up at " +
                   FormatTimestamp(t.stale().caught_up_at()) + ")";
        }
        if (!t.required()) state += " [optional]";
        if (!t.view_of().empty()) state += " [view of " + t.view_of() + "]";
        std::printf("%-24s %-10llu %-14llu %-14llu %s\n", t.topic().c_str(),
                    static_cast<unsigned long long>(t.key_count()),
                    static_cast<unsigned long long>(t.records_applied()),
                    static_cast<unsigned long long>(t.records_rejected()), state.c_str());
      }
      bool registry = false;
      for (const auto& t : r->topics()) registry = registry || t.schema_ids_size() > 0;
      if (registry) {  // registry topics: which schemas their records were written with
        std::printf("\n%-24s %-10s %s\n", "TOPIC", "SCHEMA_ID", "APPLIED_SINCE_START");
        for (const auto& t : r->topics()) {
          for (const auto& s : t.schema_ids()) {
            std::printf("%-24s %-10d %llu\n", t.topic().c_str(), s.schema_id(),
                        static_cast<unsigned long long>(s.records_applied()));
          }
        }
      }
    }
    return r->ready() ? kOk : kNotReady;
  }
  return kUsage;
}

}  // namespace

// Nothing is expected to throw (errors are Status values); if a library does, say so on
// one line and exit non-zero rather than abort.
int main(int argc, char** argv) {
  // Started again as the transform worker (transform/worker.h)?
  if (auto code = cachecar::transform::MaybeRunWorker(argc, argv)) return *code;
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: unexpected error: %s\n", "cachecarctl", e.what());
  } catch (...) {
    std::fprintf(stderr, "%s: unexpected error\n", "cachecarctl");
  }
  return 1;
}
