#include "store/record_codec.h"

#include <gtest/gtest.h>

namespace cachecar::store {
namespace {

TEST(RecordCodecTest, RoundTripsShortKeys) {
  std::string buf;
  EntryMeta meta{3, 42, 1700000000123, 7};
  EncodeRecord("k", "value", meta, &buf);
  std::string sk = StoreKey("k");
  EXPECT_EQ(sk, "k");
  auto r = DecodeRecord(sk, buf);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->key, "k");
  EXPECT_EQ(r->value, "value");
  EXPECT_EQ(r->meta.partition, 3);
  EXPECT_EQ(r->meta.offset, 42);
  EXPECT_EQ(r->meta.timestamp_ms, 1700000000123);
  EXPECT_EQ(r->meta.revision, 7u);
}

TEST(RecordCodecTest, ARegistrySchemaIdIsKeptOnlyWhenThereIsOne) {
  std::string plain, with_id;
  EncodeRecord("k", "{}", EntryMeta{1, 2, 3, 4}, &plain);
  EntryMeta meta{1, 2, 3, 4};
  meta.schema_id = 17;
  EncodeRecord("k", "{}", meta, &with_id);
  EXPECT_EQ(plain[0], 1);  // records without one keep the first format, byte for byte
  auto a = DecodeRecord("k", plain);
  ASSERT_TRUE(a.has_value());
  EXPECT_FALSE(a->meta.schema_id.has_value());
  auto b = DecodeRecord("k", with_id);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->meta.schema_id, 17);
  EXPECT_EQ(b->value, "{}");
  EXPECT_EQ(b->meta.revision, 4u);
  std::string long_key(600, 'a');
  meta.schema_id = 0;
  EncodeRecord(long_key, "v", meta, &with_id);
  auto c = DecodeRecord(StoreKey(long_key), with_id);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->meta.schema_id, 0);
  EXPECT_EQ(c->key, long_key);
  EXPECT_EQ(c->value, "v");
  for (size_t n = 0; n < 30; ++n) {  // cut inside the header or the id
    EXPECT_FALSE(DecodeRecord("k", std::string_view(with_id).substr(0, n)).has_value()) << n;
  }
}

TEST(RecordCodecTest, OriginalBytesAreKeptBesideADecodedValue) {
  EntryMeta meta{1, 2, 3, 4};
  meta.schema_id = 17;
  const std::string original("\0\0\0\0\x11\x06" "ada", 9);
  std::string with, without;
  EncodeRecord("k", "{\"name\":\"ada\"}", meta, &with, &original);
  EncodeRecord("k", "{\"name\":\"ada\"}", meta, &without);
  EXPECT_EQ(with[0], 3);
  EXPECT_EQ(without[0], 2);  // records without one keep the second format, byte for byte
  auto r = DecodeRecord("k", with);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->original, original);
  EXPECT_EQ(r->value, "{\"name\":\"ada\"}");
  EXPECT_EQ(r->meta.schema_id, 17);
  EXPECT_FALSE(DecodeRecord("k", without)->original.has_value());
  // With a long key, which comes after it.
  std::string long_key(600, 'b');
  EncodeRecord(long_key, "{}", meta, &with, &original);
  auto l = DecodeRecord(StoreKey(long_key), with);
  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(l->key, long_key);
  EXPECT_EQ(l->original, original);
  EXPECT_EQ(l->value, "{}");
  // Only beside a decoded value (a schema id): otherwise not kept.
  EncodeRecord("k", "v", EntryMeta{1, 2, 3, 4}, &with, &original);
  EXPECT_EQ(with[0], 1);
  EXPECT_FALSE(DecodeRecord("k", with)->original.has_value());
  // A length past the end is refused, not read.
  EncodeRecord("k", "{}", meta, &with, &original);
  for (size_t n = 0; n < 30 + 4 + original.size(); ++n) {
    auto cut = DecodeRecord("k", std::string_view(with).substr(0, n));
    EXPECT_FALSE(cut.has_value()) << n;
  }
}

TEST(RecordCodecTest, LongKeysAreHashedAndKeptWhole) {
  std::string key(5000, 'x');
  key += "tail";
  std::string sk = StoreKey(key);
  EXPECT_EQ(sk.size(), kLongKeyThreshold);
  EXPECT_TRUE(IsLongStoreKey(sk));
  EXPECT_EQ(sk.substr(0, kLongKeyPrefix), key.substr(0, kLongKeyPrefix));
  std::string other = key;
  other.back() = 'X';
  EXPECT_NE(StoreKey(other), sk);  // same prefix, different key
  std::string buf;
  EncodeRecord(key, "", EntryMeta{}, &buf);
  auto r = DecodeRecord(sk, buf);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->key, key);
  EXPECT_EQ(r->value, "");
}

TEST(RecordCodecTest, KeysJustBelowTheThresholdAreStoredAsIs) {
  std::string key(kLongKeyThreshold - 1, 'k');
  EXPECT_EQ(StoreKey(key), key);
  EXPECT_FALSE(IsLongStoreKey(StoreKey(key)));
}

TEST(RecordCodecTest, MalformedRecordsAreRejected) {
  EXPECT_FALSE(DecodeRecord("k", "").has_value());
  EXPECT_FALSE(DecodeRecord("k", std::string(10, '\1')).has_value());
  std::string buf;
  EncodeRecord("k", "v", EntryMeta{}, &buf);
  buf[0] = 9;  // unknown version
  EXPECT_FALSE(DecodeRecord("k", buf).has_value());
  std::string long_key(600, 'a');
  EncodeRecord(long_key, "v", EntryMeta{}, &buf);
  EXPECT_FALSE(DecodeRecord(StoreKey(long_key), buf.substr(0, 40)).has_value());  // truncated
}

}  // namespace
}  // namespace cachecar::store
