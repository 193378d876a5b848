#include <cstdlib>

#include "config/config.h"

namespace cachecar::config {

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

namespace {
bool IsNameChar(char c, bool first) {
  return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (!first && c >= '0' && c <= '9');
}
}  // namespace

Result<std::string> ExpandEnv(const std::string& text, const EnvLookup& env) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c != '$') {
      out += c;
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    if (i + 1 >= text.size() || text[i + 1] != '{') {
      out += c;  // a lone $ is literal, as in most shells' "$" before a non-name
      continue;
    }
    size_t close = text.find('}', i + 2);
    if (close == std::string::npos) {
      return InvalidArgument("unterminated ${ in \"" + text + "\"");
    }
    std::string inner = text.substr(i + 2, close - i - 2);
    std::string name = inner;
    std::optional<std::string> fallback;
    if (size_t d = inner.find(":-"); d != std::string::npos) {
      name = inner.substr(0, d);
      fallback = inner.substr(d + 2);
    }
    bool valid = !name.empty();
    for (size_t k = 0; k < name.size() && valid; ++k) valid = IsNameChar(name[k], k == 0);
    if (!valid) {
      return InvalidArgument("malformed variable reference ${" + inner +
                             "}: expected ${NAME} or ${NAME:-default}");
    }
    std::optional<std::string> value = env(name);
    if (!value || value->empty()) {
      if (!fallback) {
        std::string message = "environment variable " + name;
        message += " is not set (use ${" + name + ":-default} for a default)";
        return InvalidArgument(std::move(message));
      }
      value = fallback;
    }
    out += *value;
    i = close;
  }
  return out;
}

}  // namespace cachecar::config
