// Helpers shared by the librdkafka consumer and producer.
#pragma once

#include <librdkafka/rdkafka.h>

#include <string>

#include "common/status.h"

namespace cachecar::kafka {

// librdkafka's own diagnostics, as structured log lines (rd_kafka_conf_set_log_cb).
void LogFromKafka(const rd_kafka_t* rk, int level, const char* facility, const char* message);

// Sets a property; INVALID_ARGUMENT naming it ("kafka.properties.<name>") if refused.
Status SetConf(rd_kafka_conf_t* conf, const std::string& name, const std::string& value);

// A librdkafka error as a Status: NOT_FOUND for an unknown topic, UNAVAILABLE otherwise,
// the message prefixed with `what`.
Status FromKafka(rd_kafka_resp_err_t err, const std::string& what);

}  // namespace cachecar::kafka
