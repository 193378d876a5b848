// WatchIndex: which watches want a change to a (topic, key). Exact-key watches are found
// by a hash lookup; prefix watches by a scan of the topic's prefix watches.
//
// Not thread-safe: the hub guards it with its mutex.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "watch/watch.h"

namespace cachecar::watch {

// What the watches want at one moment: the exact keys and the prefixes watched, per
// topic, without the watches. Immutable, so the hub reads the history log with it and
// without its lock (WatchIndex::Interest).
class WatchInterest {
 public:
  // As WatchIndex::Any.
  bool Any(std::string_view topic, std::string_view key) const;

 private:
  friend class WatchIndex;
  struct Topic {
    std::unordered_set<std::string> exact;
    std::vector<std::string> prefixes;  // distinct
  };
  std::vector<std::string> names_;
  std::vector<Topic> topics_;
};

class WatchIndex {
 public:
  // Topic names by topic index.
  explicit WatchIndex(std::vector<std::string> topics);

  // Adds (removes) a watch; false if it was already in (not in) the index.
  bool Add(const std::shared_ptr<Watch>& w);
  bool Remove(const std::shared_ptr<Watch>& w);
  size_t size() const { return size_; }

  // Whether some watch matches a change, the topic given by name (as the history log
  // holds it; an unknown topic matches nothing). Builds no string.
  bool Any(std::string_view topic, std::string_view key) const;

  // The keys and prefixes watched now, built once per change of the index (a copy of the
  // distinct keys, not of the watches: 10,000 watches of one key are one entry).
  std::shared_ptr<const WatchInterest> Interest();

  // Calls fn(watch) for every watch matching a change to (topic index, key).
  template <typename Fn>
  void ForEachMatch(size_t topic, const std::string& key, Fn fn) const {
    const TopicWatches& tw = topics_[topic];
    if (auto it = tw.exact.find(key); it != tw.exact.end()) {
      for (const auto& w : it->second) fn(w);
    }
    for (const auto& w : tw.prefix) {
      if (key.compare(0, w->key.size(), w->key) == 0) fn(w);
    }
  }

 private:
  struct TopicWatches {
    std::unordered_map<std::string, std::unordered_set<std::shared_ptr<Watch>>> exact;
    std::unordered_set<std::shared_ptr<Watch>> prefix;
  };
  const std::vector<std::string> names_;
  std::vector<TopicWatches> topics_;
  size_t size_ = 0;
  std::shared_ptr<const WatchInterest> interest_;  // null after a change
};

}  // namespace cachecar::watch
