// Every metric the schema set exports, in one table (metrics/stats.h).
#pragma once

#include "metrics/stats.h"

namespace cachecar::schema {

#define CACHECAR_SCHEMA_METRICS(COUNTER, GAUGE, COUNTER_FAMILY, GAUGE_FAMILY, HISTOGRAM_FAMILY) \
  COUNTER_FAMILY(reloads, "cachecar_schema_reloads_total",                                    \
                 "Schema files recompiled after a change, by result (ok: swapped in; "        \
                 "refused: did not compile, the previous schema stays).")                     \
  GAUGE_FAMILY(reload_failing, "cachecar_schema_reload_failing",                              \
               "1 while a topic's schema file on disk does not compile and the previous "     \
               "version is still enforced.")

CACHECAR_STATS_STRUCT(SchemaStats, CACHECAR_SCHEMA_METRICS);

}  // namespace cachecar::schema
