// Snapshots end to end on the real store: SnapshotSource makes and sends one, a
// SnapshotReceiver checks it; and every way a stream or file can be wrong is refused.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "peer/snapshot_receiver.h"
#include "peer/snapshot_service.h"
#include "store/store.h"
#include "test_util.h"

namespace cachecar::peer {
namespace {

namespace fs = std::filesystem;
using Messages = std::vector<v1::StreamSnapshotResponse>;

std::vector<LocalTopic> Topics(std::vector<std::string> names, const std::string& fp = "fp") {
  std::vector<LocalTopic> out;
  for (auto& n : names) out.push_back({n, fp + ":" + n});
  return out;
}

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store::Options o;
    o.path = (fs::path(dir_.path()) / "store").string();
    o.topics = {"users", "sessions"};
    o.map_size_bytes = 64 << 20;
    auto s = store::Store::Open(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    store::WriteBatch b;
    for (int i = 0; i < 500; ++i) {
      store::Mutation m;
      m.topic = i % 2;
      m.key = "k" + std::to_string(i);
      m.value = "{\"i\":" + std::to_string(i) + "}";
      m.partition = i % 3;
      m.offset = i;
      b.mutations.push_back(m);
    }
    b.positions[{0, 0}] = 498;
    b.positions[{0, 1}] = 499;
    b.positions[{1, 2}] = 500;
    ASSERT_TRUE(store_->Apply(b).ok());
    stats_ = PeerStats::Register(registry_);
  }

  SnapshotSource Source(std::vector<LocalTopic> topics, uint32_t max_transfers = 2) {
    SnapshotSourceOptions so;
    so.work_dir = store_->options().path;
    so.max_transfers = max_transfers;
    so.max_bytes_per_second = 1ull << 40;
    return SnapshotSource(so, store_.get(), [this] { return ready_.load(); },
                          [topics] { return topics; }, &stats_);
  }

  Messages Take(SnapshotSource& source) {
    Messages out;
    Status st = source.Stream(
        [&](const v1::StreamSnapshotResponse& m) {
          out.push_back(m);
          return true;
        },
        [] { return false; });
    EXPECT_TRUE(st.ok()) << st.ToString();
    return out;
  }

  // A fresh empty directory for a receiver.
  std::string NewDir() {
    std::string d = (fs::path(dir_.path()) / ("in" + std::to_string(dirs_++))).string();
    fs::create_directories(d);
    return d;
  }

  Result<store::StoreFacts> Receive(const Messages& messages, std::vector<LocalTopic> mine,
                                    std::string* dir_out = nullptr) {
    std::string dir = NewDir();
    if (dir_out) *dir_out = dir;
    SnapshotReceiver r(dir, std::move(mine));
    for (const auto& m : messages) {
      Status st = r.Add(m);
      if (!st.ok()) return st;
    }
    return r.Finish();
  }

  testing::TempDir dir_;
  std::unique_ptr<store::Store> store_;
  prometheus::Registry registry_;
  PeerStats stats_;
  std::atomic<bool> ready_{true};
  int dirs_ = 0;
};

TEST_F(SnapshotTest, ASentSnapshotOpensAsTheSameStoreWithANewIdentity) {
  SnapshotSource source = Source(Topics({"users", "sessions"}));
  Messages messages = Take(source);
  ASSERT_GE(messages.size(), 3u);
  ASSERT_TRUE(messages.front().has_header());
  ASSERT_TRUE(messages.back().has_trailer());
  EXPECT_EQ(messages.front().header().revision(), store_->revision());

  std::string dir;
  auto facts = Receive(messages, Topics({"users", "sessions"}), &dir);
  ASSERT_TRUE(facts.ok()) << facts.status().ToString();
  EXPECT_EQ(facts->revision, store_->revision());

  store::Options o = store_->options();
  o.path = dir;
  auto copy = store::Store::Open(o);
  ASSERT_TRUE(copy.ok()) << copy.status().ToString();
  EXPECT_NE((*copy)->store_id(), store_->store_id());
  EXPECT_EQ((*copy)->revision(), store_->revision());
  for (size_t t = 0; t < 2; ++t) {
    EXPECT_EQ(*(*copy)->LoadPositions(t), *store_->LoadPositions(t));
    EXPECT_EQ(*(*copy)->KeyCount(t), *store_->KeyCount(t));
  }
  auto a = store_->NewSnapshot(), b = (*copy)->NewSnapshot();
  for (int i = 0; i < 500; ++i) {
    auto ea = a->Get(i % 2, "k" + std::to_string(i));
    auto eb = b->Get(i % 2, "k" + std::to_string(i));
    ASSERT_TRUE(ea.ok() && eb.ok());
    ASSERT_TRUE(eb->has_value());
    EXPECT_EQ((*ea)->value, (*eb)->value);
    EXPECT_EQ((*ea)->meta.offset, (*eb)->meta.offset);
  }
  // Nothing is left in the serving store's directory.
  for (const auto& e : fs::directory_iterator(store_->options().path)) {
    EXPECT_EQ(e.path().filename().string().rfind("snapshot-", 0), std::string::npos)
        << e.path();
  }
}

TEST_F(SnapshotTest, TopicsTheReceiverDoesNotServeAreDropped) {
  SnapshotSource source = Source(Topics({"users", "sessions"}));
  std::string dir;
  auto facts = Receive(Take(source), Topics({"users"}), &dir);
  ASSERT_TRUE(facts.ok()) << facts.status().ToString();
  auto after = store::InspectStoreCopy(dir);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->topics.size(), 1u);  // sessions' database is gone
  EXPECT_EQ(after->topics[0].name, "users");
  EXPECT_EQ(after->topics[0].keys, 250u);
  // And with it its positions: a sidecar that later serves it reads it from the start.
  store::Options o = store_->options();
  o.path = dir;
  auto copy = store::Store::Open(o);
  ASSERT_TRUE(copy.ok()) << copy.status().ToString();
  EXPECT_TRUE((*copy)->LoadPositions(1)->empty());
  EXPECT_EQ(*(*copy)->KeyCount(1), 0u);
}

TEST_F(SnapshotTest, AFlippedDataByteIsRefused) {
  SnapshotSource source = Source(Topics({"users", "sessions"}));
  Messages messages = Take(source);
  std::string* data = messages[1].mutable_data();
  (*data)[data->size() / 2] ^= 0x01;
  auto facts = Receive(messages, Topics({"users", "sessions"}));
  ASSERT_FALSE(facts.ok());
  EXPECT_EQ(facts.status().reason(), "SNAPSHOT_CORRUPT");
  EXPECT_NE(facts.status().message().find("SHA-256"), std::string::npos);
}

TEST_F(SnapshotTest, AStreamCutShortIsRefused) {
  SnapshotSource source = Source(Topics({"users", "sessions"}));
  Messages messages = Take(source);
  messages.pop_back();  // no trailer
  auto facts = Receive(messages, Topics({"users", "sessions"}));
  ASSERT_FALSE(facts.ok());
  EXPECT_EQ(facts.status().reason(), "SNAPSHOT_CORRUPT");
  messages.pop_back();  // and a data chunk short
  facts = Receive(messages, Topics({"users", "sessions"}));
  ASSERT_FALSE(facts.ok());
  EXPECT_NE(facts.status().message().find("ended after"), std::string::npos);
}

TEST_F(SnapshotTest, StreamsOutOfOrderAreRefused) {
  SnapshotSource source = Source(Topics({"users", "sessions"}));
  Messages good = Take(source);
  auto refused = [&](Messages m, const char* why) {
    auto facts = Receive(m, Topics({"users", "sessions"}));
    EXPECT_FALSE(facts.ok()) << why;
    if (!facts.ok()) {
      EXPECT_EQ(facts.status().reason(), "SNAPSHOT_CORRUPT") << why;
    }
  };
  {
    Messages m = good;
    m.insert(m.begin() + 1, good.front());
    refused(m, "a second header");
  }
  {
    Messages m(good.begin() + 1, good.end());
    refused(m, "no header");
  }
  {
    Messages m = good;
    m.insert(m.end() - 1, good[1]);
    refused(m, "more data than declared");
  }
  {
    Messages m = good;
    m.push_back(good[1]);
    refused(m, "data after the trailer");
  }
  {
    Messages m = good;
    m.insert(m.begin() + 1, v1::StreamSnapshotResponse());
    refused(m, "an empty message");
  }
}

TEST_F(SnapshotTest, AHeaderThatDoesNotDescribeTheDataIsRefused) {
  SnapshotSource source = Source(Topics({"users", "sessions"}));
  Messages m = Take(source);
  (*m.front().mutable_header()->mutable_topics(0)->mutable_positions())[0] += 1;
  auto facts = Receive(m, Topics({"users", "sessions"}));
  ASSERT_FALSE(facts.ok());
  EXPECT_EQ(facts.status().reason(), "SNAPSHOT_CORRUPT");
}

TEST_F(SnapshotTest, ASnapshotOfOtherSettingsIsIncompatible) {
  SnapshotSource source = Source(Topics({"users", "sessions"}, "theirs"));
  auto facts = Receive(Take(source), Topics({"users", "sessions"}, "mine"));
  ASSERT_FALSE(facts.ok());
  EXPECT_EQ(facts.status().reason(), "PEER_INCOMPATIBLE");
  EXPECT_NE(facts.status().message().find("topic users"), std::string::npos);
  EXPECT_NE(facts.status().message().find("topic sessions"), std::string::npos);

  SnapshotSource fewer = Source(Topics({"users"}));
  facts = Receive(Take(fewer), Topics({"users", "sessions"}));
  ASSERT_FALSE(facts.ok());
  EXPECT_EQ(facts.status().reason(), "PEER_INCOMPATIBLE");
  EXPECT_NE(facts.status().message().find("sessions is not in it"), std::string::npos);
}

TEST_F(SnapshotTest, AnotherStoreFormatOrStreamVersionIsIncompatible) {
  SnapshotSource source = Source(Topics({"users", "sessions"}));
  Messages m = Take(source);
  Messages other_format = m;
  other_format.front().mutable_header()->set_store_format("cachecar-store-999");
  auto facts = Receive(other_format, Topics({"users", "sessions"}));
  ASSERT_FALSE(facts.ok());
  EXPECT_EQ(facts.status().reason(), "SNAPSHOT_INCOMPATIBLE");
  Messages other_version = m;
  other_version.front().mutable_header()->set_stream_version(2);
  facts = Receive(other_version, Topics({"users", "sessions"}));
  ASSERT_FALSE(facts.ok());
  EXPECT_EQ(facts.status().reason(), "SNAPSHOT_INCOMPATIBLE");
}

TEST_F(SnapshotTest, AHeaderDeclaringMoreThanTheDiskHoldsIsRefusedBeforeAnyData) {
  SnapshotSource source = Source(Topics({"users", "sessions"}));
  Messages m = Take(source);
  m.front().mutable_header()->set_data_bytes(1ull << 62);
  std::string dir = NewDir();
  SnapshotReceiver r(dir, Topics({"users", "sessions"}));
  Status st = r.Add(m.front());
  EXPECT_EQ(st.reason(), "DISK_FULL") << st.ToString();
}

TEST_F(SnapshotTest, DataThatIsNotAStoreIsRefused) {
  SnapshotSource source = Source(Topics({"users", "sessions"}));
  Messages m = Take(source);
  // Replace the data with garbage of the same size, and a trailer that matches it: the
  // checksum holds, the content does not.
  Messages forged;
  forged.push_back(m.front());
  uint64_t size = m.front().header().data_bytes();
  std::string garbage(size, 'x');
  v1::StreamSnapshotResponse d;
  d.set_data(garbage);
  forged.push_back(d);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(garbage.data(), garbage.size(), digest, &len, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned i = 0; i < len; ++i) {
    char b[3];
    std::snprintf(b, sizeof(b), "%02x", digest[i]);
    hex += b;
  }
  v1::StreamSnapshotResponse t;
  t.mutable_trailer()->set_sha256(hex);
  forged.push_back(t);
  auto facts = Receive(forged, Topics({"users", "sessions"}));
  ASSERT_FALSE(facts.ok());
  EXPECT_EQ(facts.status().reason(), "SNAPSHOT_CORRUPT") << facts.status().ToString();
}

TEST_F(SnapshotTest, ANotReadySidecarSendsNothing) {
  ready_ = false;
  SnapshotSource source = Source(Topics({"users", "sessions"}));
  int writes = 0;
  Status st = source.Stream([&](const v1::StreamSnapshotResponse&) { return ++writes > 0; },
                            [] { return false; });
  EXPECT_EQ(st.reason(), "CACHE_NOT_READY");
  EXPECT_EQ(writes, 0);
}

TEST_F(SnapshotTest, TransfersPastTheLimitAreRefusedAndSlotsComeBack) {
  SnapshotSource source = Source(Topics({"users", "sessions"}), /*max_transfers=*/1);
  std::mutex mu;
  std::condition_variable cv;
  bool in_first = false, release = false;
  std::thread first([&] {
    Status st = source.Stream(
        [&](const v1::StreamSnapshotResponse&) {
          std::unique_lock<std::mutex> lock(mu);
          in_first = true;
          cv.notify_all();
          cv.wait(lock, [&] { return release; });
          return true;
        },
        [] { return false; });
    EXPECT_TRUE(st.ok()) << st.ToString();
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return in_first; });
  }
  Status busy = source.Stream([](const v1::StreamSnapshotResponse&) { return true; },
                              [] { return false; });
  EXPECT_EQ(busy.reason(), "TOO_MANY_TRANSFERS");
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  first.join();
  EXPECT_FALSE(Take(source).empty());  // the slot came back
}

TEST_F(SnapshotTest, AReceiverThatGoesAwayEndsTheTransfer) {
  SnapshotSource source = Source(Topics({"users", "sessions"}));
  int writes = 0;
  Status st = source.Stream([&](const v1::StreamSnapshotResponse&) { return ++writes < 2; },
                            [] { return false; });
  EXPECT_EQ(st.code(), Code::kCancelled);
  EXPECT_EQ(writes, 2);
}

// Files: what `cachecarctl snapshot save` writes and `cachecar --bootstrap-from` reads.
class SnapshotFileTest : public SnapshotTest {
 protected:
  std::string Write(const Messages& messages, std::string prefix = "CCSNAP01") {
    std::string path = (fs::path(dir_.path()) / ("f" + std::to_string(files_++))).string();
    std::ofstream out(path, std::ios::binary);
    out << prefix;
    for (const auto& m : messages) {
      std::string body = m.SerializeAsString();
      uint64_t v = body.size();
      while (v >= 0x80) {
        out.put(static_cast<char>((v & 0x7f) | 0x80));
        v >>= 7;
      }
      out.put(static_cast<char>(v));
      out << body;
    }
    return path;
  }
  Result<store::StoreFacts> ReadFile(const std::string& path) {
    SnapshotReceiver r(NewDir(), Topics({"users", "sessions"}));
    return ReceiveSnapshotFile(path, &r);
  }
  int files_ = 0;
};

TEST_F(SnapshotFileTest, AFileRoundTrips) {
  SnapshotSource source = Source(Topics({"users", "sessions"}));
  auto facts = ReadFile(Write(Take(source)));
  ASSERT_TRUE(facts.ok()) << facts.status().ToString();
  EXPECT_EQ(facts->revision, store_->revision());
}

TEST_F(SnapshotFileTest, HostileFilesAreRefusedWithAClearError) {
  SnapshotSource source = Source(Topics({"users", "sessions"}));
  Messages good = Take(source);
  auto missing = ReadFile((fs::path(dir_.path()) / "nope").string());
  EXPECT_EQ(missing.status().code(), Code::kInvalidArgument);
  auto not_snapshot = ReadFile(Write(good, "{\"json\""));
  EXPECT_EQ(not_snapshot.status().code(), Code::kInvalidArgument);
  EXPECT_NE(not_snapshot.status().message().find("not a cachecar snapshot"), std::string::npos);

  // A length far past the bound: refused before anything is allocated for it.
  std::string huge = Write({}, std::string("CCSNAP01") + "\xff\xff\xff\xff\x0f");
  auto h = ReadFile(huge);
  EXPECT_EQ(h.status().reason(), "SNAPSHOT_CORRUPT");
  // A length that never ends.
  auto endless = ReadFile(Write({}, std::string("CCSNAP01") + "\xff\xff\xff\xff\xff\xff\xff"));
  EXPECT_EQ(endless.status().reason(), "SNAPSHOT_CORRUPT");
  // Bytes that do not decode as a message.
  auto garbage = ReadFile(Write({}, std::string("CCSNAP01") + "\x05\xff\xff\xff\xff\xff"));
  EXPECT_EQ(garbage.status().reason(), "SNAPSHOT_CORRUPT");
  // A file cut inside a message.
  std::string whole = Write(good);
  fs::resize_file(whole, fs::file_size(whole) - 10);
  auto cut = ReadFile(whole);
  EXPECT_EQ(cut.status().reason(), "SNAPSHOT_CORRUPT");
  // An empty file after the magic: no header.
  auto empty = ReadFile(Write({}));
  EXPECT_EQ(empty.status().reason(), "SNAPSHOT_CORRUPT");
}

}  // namespace
}  // namespace cachecar::peer
