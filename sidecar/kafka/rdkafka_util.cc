#include "kafka/rdkafka_util.h"

#include "common/log.h"
#include "config/config.h"

namespace cachecar::kafka {

// librdkafka's own diagnostics, as structured log lines (syslog levels: 3 error, 4 warning).
void LogFromKafka(const rd_kafka_t*, int level, const char* facility, const char* message) {
  spdlog::level::level_enum l = level <= 3   ? spdlog::level::err
                                : level == 4 ? spdlog::level::warn
                                : level <= 6 ? spdlog::level::info
                                             : spdlog::level::debug;
  log::Write(l, "kafka client", {{"facility", std::string_view(facility)},
                                 {"detail", std::string_view(message)}});
}

Status SetConf(rd_kafka_conf_t* conf, const std::string& name, const std::string& value) {
  char err[512];
  if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), err, sizeof(err)) !=
      RD_KAFKA_CONF_OK) {
    // librdkafka's message may quote the value: never for a secret.
    if (config::IsSecretProperty(name)) {
      return InvalidArgument("librdkafka property " + name + ": invalid value (not shown)",
                             {{"kafka.properties." + name, "invalid value (not shown)"}});
    }
    return InvalidArgument("librdkafka property " + name + ": " + err,
                           {{"kafka.properties." + name, err}});
  }
  return Status::Ok();
}

Status FromKafka(rd_kafka_resp_err_t err, const std::string& what) {
  std::string msg = what + ": " + rd_kafka_err2str(err);
  switch (err) {
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
      return NotFound(msg, "KAFKA_TOPIC_NOT_FOUND");
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
      return Unavailable(msg, "KAFKA_UNAVAILABLE");
    default:
      return Status(Code::kUnavailable, msg, "KAFKA_ERROR");
  }
}


}  // namespace cachecar::kafka
