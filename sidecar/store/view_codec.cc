#include "store/view_codec.h"

#include <cstdint>
#include <cstring>

#include <nlohmann/json.hpp>

namespace cachecar::store {

namespace {

constexpr std::string_view kKeyField = "{\"key\":";
constexpr std::string_view kValueField = ",\"value\":";

void AppendJsonString(std::string_view s, std::string* out) {
  static const char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (u < 0x20) {
      out->append("\\u00");
      out->push_back(kHex[u >> 4]);
      out->push_back(kHex[u & 15]);
    } else {
      out->push_back(c);
    }
  }
  out->push_back('"');
}

// Length of the JSON string starting at text[0] == '"', quotes included; 0 if unterminated.
size_t StringLength(std::string_view text) {
  for (size_t i = 1; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;
    } else if (text[i] == '"') {
      return i + 1;
    }
  }
  return 0;
}

// Length of the one JSON value at the start of `text` (valid JSON, as the store holds);
// 0 if it does not end.
size_t ValueLength(std::string_view text) {
  size_t depth = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') {
      const size_t n = StringLength(text.substr(i));
      if (n == 0) return 0;
      i += n - 1;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (depth == 0) return i;  // a scalar ended by its container
      --depth;
    } else if (c == ',' && depth == 0) {
      return i;
    }
    if (depth == 0 && (c == '}' || c == ']' || c == '"')) return i + 1;
  }
  return depth == 0 ? text.size() : 0;
}

void PutU32(uint32_t v, std::string* out) {
  char b[4];
  std::memcpy(b, &v, 4);
  out->append(b, 4);
}

bool GetStr(std::string_view* in, std::string_view* out) {
  uint32_t n;
  if (in->size() < 4) return false;
  std::memcpy(&n, in->data(), 4);
  if (in->size() - 4 < n) return false;
  *out = in->substr(4, n);
  in->remove_prefix(4 + n);
  return true;
}

}  // namespace

void EncodeViewValue(const std::vector<ViewMember>& members, std::string* out) {
  out->clear();
  out->push_back('[');
  for (size_t i = 0; i < members.size(); ++i) {
    if (i > 0) out->push_back(',');
    out->append(kKeyField);
    AppendJsonString(members[i].key, out);
    out->append(kValueField);
    std::string_view v = members[i].value;
    const size_t first = v.find_first_not_of(" \t\r\n");
    v = first == std::string_view::npos ? std::string_view("null") : v.substr(first);
    v = v.substr(0, v.find_last_not_of(" \t\r\n") + 1);
    out->append(v);
    out->push_back('}');
  }
  out->push_back(']');
}

std::optional<std::vector<ViewMember>> DecodeViewValue(std::string_view text) {
  std::vector<ViewMember> out;
  if (text.size() < 2 || text.front() != '[' || text.back() != ']') return std::nullopt;
  text = text.substr(1, text.size() - 2);
  while (!text.empty()) {
    if (!out.empty()) {
      if (text.front() != ',') return std::nullopt;
      text.remove_prefix(1);
    }
    if (text.substr(0, kKeyField.size()) != kKeyField) return std::nullopt;
    text.remove_prefix(kKeyField.size());
    const size_t key_len = text.empty() || text.front() != '"' ? 0 : StringLength(text);
    if (key_len == 0) return std::nullopt;
    ViewMember m;
    try {
      m.key = nlohmann::json::parse(text.substr(0, key_len)).get<std::string>();
    } catch (const nlohmann::json::exception&) {
      return std::nullopt;
    }
    text.remove_prefix(key_len);
    if (text.substr(0, kValueField.size()) != kValueField) return std::nullopt;
    text.remove_prefix(kValueField.size());
    const size_t value_len = ValueLength(text);
    if (value_len == 0 || value_len >= text.size() || text[value_len] != '}') return std::nullopt;
    m.value = text.substr(0, value_len);
    text.remove_prefix(value_len + 1);
    out.push_back(std::move(m));
  }
  return out;
}

void EncodeViewKeys(std::string_view topic_key, const std::vector<std::string>& view_keys,
                    std::string* out) {
  out->clear();
  PutU32(static_cast<uint32_t>(topic_key.size()), out);
  out->append(topic_key);
  for (const auto& k : view_keys) {
    PutU32(static_cast<uint32_t>(k.size()), out);
    out->append(k);
  }
}

std::optional<DecodedViewKeys> DecodeViewKeys(std::string_view stored) {
  DecodedViewKeys out;
  if (!GetStr(&stored, &out.topic_key)) return std::nullopt;
  while (!stored.empty()) {
    std::string_view k;
    if (!GetStr(&stored, &k)) return std::nullopt;
    out.view_keys.push_back(k);
  }
  return out;
}

}  // namespace cachecar::store
