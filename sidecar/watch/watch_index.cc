#include "watch/watch_index.h"

namespace cachecar::watch {

WatchIndex::WatchIndex(std::vector<std::string> topics)
    : names_(std::move(topics)), topics_(names_.size()) {}

bool WatchIndex::Add(const std::shared_ptr<Watch>& w) {
  TopicWatches& tw = topics_[w->topic];
  bool inserted = w->prefix ? tw.prefix.insert(w).second : tw.exact[w->key].insert(w).second;
  if (inserted) {
    ++size_;
    interest_.reset();
  }
  return inserted;
}

bool WatchIndex::Remove(const std::shared_ptr<Watch>& w) {
  TopicWatches& tw = topics_[w->topic];
  size_t erased = 0;
  if (w->prefix) {
    erased = tw.prefix.erase(w);
  } else if (auto it = tw.exact.find(w->key); it != tw.exact.end()) {
    erased = it->second.erase(w);
    if (it->second.empty()) tw.exact.erase(it);
  }
  if (erased > 0) {
    --size_;
    interest_.reset();
  }
  return erased > 0;
}

bool WatchIndex::Any(std::string_view topic, std::string_view key) const {
  // Called for every change read back: compare names in place rather than build a string
  // for the map (topics are few).
  size_t t = 0;
  while (t < names_.size() && names_[t] != topic) ++t;
  if (t == names_.size()) return false;
  const TopicWatches& tw = topics_[t];
  if (!tw.exact.empty() && tw.exact.count(std::string(key)) > 0) return true;
  for (const auto& w : tw.prefix) {
    if (key.substr(0, w->key.size()) == w->key) return true;
  }
  return false;
}

std::shared_ptr<const WatchInterest> WatchIndex::Interest() {
  if (interest_) return interest_;
  auto in = std::make_shared<WatchInterest>();
  in->names_ = names_;
  in->topics_.resize(topics_.size());
  for (size_t t = 0; t < topics_.size(); ++t) {
    for (const auto& [key, watches] : topics_[t].exact) in->topics_[t].exact.insert(key);
    std::unordered_set<std::string> prefixes;
    for (const auto& w : topics_[t].prefix) {
      if (prefixes.insert(w->key).second) in->topics_[t].prefixes.push_back(w->key);
    }
  }
  interest_ = std::move(in);
  return interest_;
}

bool WatchInterest::Any(std::string_view topic, std::string_view key) const {
  size_t t = 0;
  while (t < names_.size() && names_[t] != topic) ++t;
  if (t == names_.size()) return false;
  const Topic& tw = topics_[t];
  if (!tw.exact.empty() && tw.exact.count(std::string(key)) > 0) return true;
  for (const auto& p : tw.prefixes) {
    if (key.substr(0, p.size()) == p) return true;
  }
  return false;
}

}  // namespace cachecar::watch
