// Every metric Watch exports, in one table (metrics/stats.h).
#pragma once

#include "metrics/stats.h"

namespace cachecar::watch {

#define CACHECAR_WATCH_METRICS(COUNTER, GAUGE, COUNTER_FAMILY, GAUGE_FAMILY,                   \
                               HISTOGRAM_FAMILY)                                               \
  GAUGE(streams, "cachecar_watch_streams", "Open Watch streams")                              \
  GAUGE(watches, "cachecar_watches", "Watches open across all streams")                       \
  GAUGE(fanned_out, "cachecar_watch_fanout_revision",                                         \
        "Store revision up to which changes have been handed to live watches (compare "       \
        "cachecar_store_revision)")                                                           \
  GAUGE(oldest, "cachecar_watch_history_oldest_revision",                                     \
        "Oldest revision the history log still holds: a resume from further back is "         \
        "cancelled with HISTORY_COMPACTED")                                                   \
  COUNTER(events_sent, "cachecar_watch_events_sent_total", "Watch events handed to clients")  \
  COUNTER(demotions, "cachecar_watch_buffer_overflows_total",                                 \
          "Times a live watch's buffer filled and it went back to reading the history log "   \
          "(a client slower than the changes)")                                               \
  COUNTER_FAMILY(canceled, "cachecar_watch_canceled_total",                                   \
                 "Watches ended or refused, by reason (CANCELED_BY_CLIENT included)")

CACHECAR_STATS_STRUCT(WatchStats, CACHECAR_WATCH_METRICS);

}  // namespace cachecar::watch
