// Structured logging: one line per event, JSON by default ({"ts":..,"level":..,"msg":..,
// plus fields such as topic, partition, offset}), or "key=value" text. Backed by spdlog.
// Never pass a secret as a field. Thread-safe: any thread may log.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

namespace cachecar::log {

using Value = std::variant<std::string_view, int64_t, uint64_t, int, double, bool>;
struct Field {
  std::string_view key;
  Value value;
};

// Configures the process logger. format: "json" or "text"; level: trace..error.
void Init(std::string_view format, std::string_view level);

void Write(spdlog::level::level_enum level, std::string_view msg,
           std::initializer_list<Field> fields = {});

inline void Info(std::string_view msg, std::initializer_list<Field> f = {}) {
  Write(spdlog::level::info, msg, f);
}
inline void Warn(std::string_view msg, std::initializer_list<Field> f = {}) {
  Write(spdlog::level::warn, msg, f);
}
inline void Error(std::string_view msg, std::initializer_list<Field> f = {}) {
  Write(spdlog::level::err, msg, f);
}
inline void Debug(std::string_view msg, std::initializer_list<Field> f = {}) {
  Write(spdlog::level::debug, msg, f);
}

}  // namespace cachecar::log
