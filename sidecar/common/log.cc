#include "common/log.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <atomic>
#include <nlohmann/json.hpp>

namespace cachecar::log {
namespace {
std::atomic<bool> g_json{true};
}  // namespace

void Init(std::string_view format, std::string_view level) {
  g_json = format != "text";
  auto logger = std::make_shared<spdlog::logger>(
      "cachecar", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  // JSON lines are built whole in Write(); text lines get a time and level prefix.
  logger->set_pattern(g_json ? "%v" : "%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  logger->set_level(spdlog::level::from_str(std::string(level)));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

void Write(spdlog::level::level_enum level, std::string_view msg,
           std::initializer_list<Field> fields) {
  auto logger = spdlog::default_logger_raw();
  if (!logger->should_log(level)) return;
  if (g_json) {
    nlohmann::json j;
    auto now = std::chrono::system_clock::now();
    j["ts"] = std::chrono::duration<double>(now.time_since_epoch()).count();
    j["level"] = spdlog::level::to_string_view(level).data();
    j["msg"] = msg;
    for (const auto& f : fields) {
      std::visit([&](const auto& v) { j[std::string(f.key)] = v; }, f.value);
    }
    // Replace invalid UTF-8 (e.g. a bytes key) rather than throw.
    logger->log(level, "{}", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  } else {
    std::string line(msg);
    for (const auto& f : fields) {
      line += ' ';
      line += f.key;
      line += '=';
      std::visit(
          [&](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::string_view>) {
              line += v;
            } else if constexpr (std::is_same_v<T, bool>) {
              line += v ? "true" : "false";
            } else {
              line += std::to_string(v);
            }
          },
          f.value);
    }
    logger->log(level, "{}", line);
  }
}

}  // namespace cachecar::log
