#include "store/history_codec.h"

#include <gtest/gtest.h>

namespace cachecar::store {
namespace {

TEST(HistoryCodecTest, RevisionKeysSortInRevisionOrder) {
  auto a = RevisionKey(255), b = RevisionKey(256), c = RevisionKey(1ull << 40);
  std::string sa(a.begin(), a.end()), sb(b.begin(), b.end()), sc(c.begin(), c.end());
  EXPECT_LT(sa, sb);
  EXPECT_LT(sb, sc);
  EXPECT_EQ(RevisionFromKey(sc), 1ull << 40);
}

TEST(HistoryCodecTest, APutWithItsPreviousEntryRoundTrips) {
  std::string value = "{\"v\":2}", out;
  EncodeHistoryHead("users", std::string("k\0ey", 4), &value, EntryMeta{3, 42, 1700, 0}, &out);
  DecodedRecord prev;
  prev.value = "{\"v\":1}";
  prev.meta = EntryMeta{3, 40, 1600, 7};
  AppendHistoryPrev(prev, &out);

  std::string_view topic, key;
  ASSERT_TRUE(PeekHistory(out, &topic, &key));
  EXPECT_EQ(topic, "users");
  EXPECT_EQ(key, std::string("k\0ey", 4));
  HistoryEvent ev;
  ASSERT_TRUE(DecodeHistory(9, out, &ev));
  EXPECT_EQ(ev.revision, 9u);
  EXPECT_EQ(ev.topic, "users");
  EXPECT_EQ(ev.value, value);
  EXPECT_EQ(ev.meta.offset, 42);
  EXPECT_EQ(ev.meta.revision, 9u);
  ASSERT_TRUE(ev.prev.has_value());
  EXPECT_EQ(ev.prev->value, "{\"v\":1}");
  EXPECT_EQ(ev.prev->meta.offset, 40);
  EXPECT_EQ(ev.prev->meta.revision, 7u);
}

TEST(HistoryCodecTest, SchemaIdsOfTheChangeAndOfTheEntryItReplacedRoundTrip) {
  std::string value = "{}", out;
  EntryMeta meta{0, 5, 1, 0};
  meta.schema_id = 21;
  EncodeHistoryHead("t", "k", &value, meta, &out);
  DecodedRecord prev;
  prev.value = "[]";
  prev.meta = EntryMeta{0, 4, 1, 3};
  prev.meta.schema_id = 20;
  AppendHistoryPrev(prev, &out);
  AppendHistoryRegistry(meta, nullptr, &prev, &out);
  HistoryEvent ev;
  ASSERT_TRUE(DecodeHistory(4, out, &ev));
  EXPECT_EQ(ev.meta.schema_id, 21);
  ASSERT_TRUE(ev.prev.has_value());
  EXPECT_EQ(ev.prev->meta.schema_id, 20);
  EXPECT_EQ(ev.prev->value, "[]");
  for (size_t n = 0; n < out.size(); ++n) {
    HistoryEvent cut;
    EXPECT_FALSE(DecodeHistory(1, out.substr(0, n), &cut)) << "truncated to " << n;
  }

  // A delete of an entry that had one; a change without any writes nothing more.
  std::string del, plain;
  EncodeHistoryHead("t", "k", nullptr, EntryMeta{0, 6, 1, 0}, &del);
  AppendHistoryPrev(prev, &del);
  AppendHistoryRegistry(EntryMeta{0, 6, 1, 0}, nullptr, &prev, &del);
  ASSERT_TRUE(DecodeHistory(5, del, &ev));
  EXPECT_FALSE(ev.meta.schema_id.has_value());
  EXPECT_EQ(ev.prev->meta.schema_id, 20);
  EncodeHistoryHead("t", "k", &value, EntryMeta{0, 7, 1, 0}, &plain);
  const std::string before = plain;
  AppendHistoryRegistry(EntryMeta{0, 7, 1, 0}, nullptr, nullptr, &plain);
  EXPECT_EQ(plain, before);
}

TEST(HistoryCodecTest, OriginalValuesOfTheChangeAndOfTheEntryItReplacedRoundTrip) {
  std::string value = "{\"n\":2}", original("\0\0\0\0\x15\x04", 6), out;
  EntryMeta meta{0, 5, 1, 0};
  meta.schema_id = 21;
  EncodeHistoryHead("t", "k", &value, meta, &out);
  DecodedRecord prev;
  prev.value = "{\"n\":1}";
  prev.meta = EntryMeta{0, 4, 1, 3};
  prev.meta.schema_id = 21;
  const std::string prev_original("\0\0\0\0\x15\x02", 6);
  prev.original = prev_original;
  AppendHistoryPrev(prev, &out);
  AppendHistoryRegistry(meta, &original, &prev, &out);
  HistoryEvent ev;
  ASSERT_TRUE(DecodeHistory(4, out, &ev));
  EXPECT_EQ(ev.value, value);
  EXPECT_EQ(ev.original, original);
  ASSERT_TRUE(ev.prev.has_value());
  EXPECT_EQ(ev.prev->value, "{\"n\":1}");
  EXPECT_EQ(ev.prev->original, prev_original);
  for (size_t n = 0; n < out.size(); ++n) {
    HistoryEvent cut;
    EXPECT_FALSE(DecodeHistory(1, out.substr(0, n), &cut)) << "truncated to " << n;
  }
  EXPECT_FALSE(DecodeHistory(1, out + "x", &ev));

  // A delete keeps the replaced entry's original only; a record read after one with
  // originals has none of its own.
  std::string del, plain;
  EncodeHistoryHead("t", "k", nullptr, EntryMeta{0, 6, 1, 0}, &del);
  AppendHistoryPrev(prev, &del);
  AppendHistoryRegistry(EntryMeta{0, 6, 1, 0}, nullptr, &prev, &del);
  ASSERT_TRUE(DecodeHistory(5, del, &ev));
  EXPECT_FALSE(ev.original.has_value());
  EXPECT_EQ(ev.prev->original, prev_original);
  EncodeHistoryHead("t", "k", &value, EntryMeta{0, 7, 1, 0}, &plain);
  ASSERT_TRUE(DecodeHistory(6, plain, &ev));
  EXPECT_FALSE(ev.original.has_value());
  EXPECT_FALSE(ev.prev.has_value());
}

TEST(HistoryCodecTest, ADeleteHasNoValue) {
  std::string out;
  EncodeHistoryHead("t", "k", nullptr, EntryMeta{0, 1, -1, 0}, &out);
  HistoryEvent ev;
  ASSERT_TRUE(DecodeHistory(1, out, &ev));
  EXPECT_FALSE(ev.value.has_value());
  EXPECT_FALSE(ev.prev.has_value());
  EXPECT_EQ(ev.meta.timestamp_ms, -1);
}

TEST(HistoryCodecTest, EveryTruncationAndTrailingGarbageIsRefused) {
  std::string value = "value", out;
  EncodeHistoryHead("topic", "key", &value, EntryMeta{1, 2, 3, 0}, &out);
  for (size_t n = 0; n < out.size(); ++n) {
    HistoryEvent ev;
    EXPECT_FALSE(DecodeHistory(1, out.substr(0, n), &ev)) << "truncated to " << n;
  }
  HistoryEvent ev;
  EXPECT_FALSE(DecodeHistory(1, out + "x", &ev));
  std::string_view topic, key;
  EXPECT_FALSE(PeekHistory(out.substr(0, 2), &topic, &key));
  EXPECT_FALSE(PeekHistory(out.substr(0, 9), &topic, &key));
}

}  // namespace
}  // namespace cachecar::store
