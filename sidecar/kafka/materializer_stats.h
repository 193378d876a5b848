// Every metric the materializer exports, in one table (metrics/stats.h).
#pragma once

#include "metrics/stats.h"

namespace cachecar::kafka {

#define CACHECAR_MATERIALIZER_METRICS(COUNTER, GAUGE, COUNTER_FAMILY, GAUGE_FAMILY,            \
                                      HISTOGRAM_FAMILY)                                        \
  COUNTER_FAMILY(consumed, "cachecar_materializer_records_consumed_total",                    \
                 "Records read from Kafka, valid or not.")                                     \
  COUNTER_FAMILY(applied, "cachecar_materializer_records_applied_total",                      \
                 "Records applied to the store (puts and deletes).")                          \
  COUNTER_FAMILY(rejected, "cachecar_materializer_records_rejected_total",                    \
                 "Records skipped and never served, by reason.")                              \
  COUNTER_FAMILY(consumer_errors, "cachecar_kafka_consumer_errors_total",                     \
                 "Errors reported by the Kafka consumer (it keeps retrying).")                \
  GAUGE_FAMILY(applied_offset, "cachecar_partition_applied_offset",                           \
               "Next offset to apply: all below it is in the store.")                         \
  GAUGE_FAMILY(end_offset, "cachecar_partition_end_offset",                                   \
               "Latest end offset (high watermark) seen.")                                    \
  GAUGE_FAMILY(lag, "cachecar_partition_lag_records", "End offset minus applied offset.")     \
  GAUGE_FAMILY(lag_seconds, "cachecar_partition_lag_seconds",                                 \
               "0 when every record is applied; while behind, the age of the last applied "   \
               "record (its Kafka timestamp to now): the data served is at most that old.")   \
  GAUGE_FAMILY(start_offset, "cachecar_partition_start_offset",                               \
               "Offset this process started consuming from: the stored position on a "        \
               "resume, the log start on a first run.")                                       \
  GAUGE_FAMILY(serving_stored, "cachecar_topic_serving_stored_state",                         \
               "1 while the topic serves the state its store held at start because Kafka "    \
               "cannot be reached (readiness.broker_outage_at_start: serve_stored); reads "   \
               "are marked stale.")                                                           \
  GAUGE_FAMILY(halted, "cachecar_partition_halted",                                           \
               "1 while the partition is halted by on_invalid: fail.")                        \
  COUNTER_FAMILY(dead_letters, "cachecar_materializer_dead_letters_total",                    \
                 "Refused records produced to a dead-letter topic, by result (ok, failed).")  \
  COUNTER_FAMILY(retention_skipped, "cachecar_materializer_retention_skipped_records_total",   \
                 "Records Kafka's retention deleted before they were read, passed over by a " \
                 "topic with retain_beyond_log (its stored data kept), by topic.")            \
  COUNTER_FAMILY(rebuilds, "cachecar_materializer_topic_rebuilds_total",                      \
                 "Topics emptied and read again from the beginning, by reason "               \
                 "(offset_out_of_range, topic_deleted, definition_changed).")                 \
  COUNTER_FAMILY(transform_skipped, "cachecar_transform_skipped_records_total",               \
                 "Records a topic's transform gave no value for (empty): consumed, nothing "  \
                 "changed.")                                                                   \
  HISTOGRAM_FAMILY(transform_duration, "cachecar_transform_batch_duration_seconds",            \
                   "Time to run one batch of records through the transform worker.")          \
  COUNTER_FAMILY(view_key_errors, "cachecar_view_key_errors_total",                           \
                 "Entries left out of a view, by view and reason: its key failed (error, "    \
                 "budget_exceeded, crashed, too_many_keys) or a view key was full "           \
                 "(too_many_entries).")                                                       \
  HISTOGRAM_FAMILY(view_keys_duration, "cachecar_view_keys_batch_duration_seconds",            \
                   "Time to compute the view keys of one commit's entries.")                  \
  GAUGE_FAMILY(write_failing, "cachecar_store_write_failing",                                 \
               "1 while commits to the store fail, by reason (DISK_FULL, STORE_FULL, ...): "  \
               "nothing is applied, not ready.")                                              \
  COUNTER(commits, "cachecar_store_commits_total", "Write transactions committed.")           \
  HISTOGRAM_FAMILY(commit_duration, "cachecar_store_commit_duration_seconds",                 \
                   "Time to commit one write transaction, its fsync included.")                \
  HISTOGRAM_FAMILY(batch_delay, "cachecar_materializer_batch_delay_seconds",                  \
                   "From the first record of a batch read from Kafka until the batch was "     \
                   "committed and readable: how long a record waits to be served.")          \
  GAUGE(revision, "cachecar_store_revision", "The store revision.")                           \
  COUNTER_FAMILY(offset_commits, "cachecar_kafka_offset_commits_total",                       \
                 "Commits of applied offsets to the Kafka consumer group, by result (ok, "    \
                 "failed).")

CACHECAR_STATS_STRUCT(MaterializerStats, CACHECAR_MATERIALIZER_METRICS);

}  // namespace cachecar::kafka
