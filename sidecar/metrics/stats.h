// How a component declares its metrics: in one table, in one place (as Envoy's stats
// structs do), so every name a component exports can be read at a glance.
//
// A component writes a table macro that takes one macro argument per metric kind and
// lists each metric as KIND(member, "name", "help"), then declares its struct from it:
//
//   #define CACHECAR_FOO_METRICS(COUNTER, GAUGE, COUNTER_FAMILY, GAUGE_FAMILY,
//                                HISTOGRAM_FAMILY)
//     COUNTER(commits, "cachecar_foo_commits_total", "Commits.")
//     GAUGE_FAMILY(lag, "cachecar_foo_lag_records", "Lag, by topic.")
//
// (each line of the real macro ends in a backslash).
//   CACHECAR_STATS_STRUCT(FooStats, CACHECAR_FOO_METRICS)
//
// FooStats then has a pointer member per metric, and FooStats::Register(registry)
// creates them all.
//
// A plain metric (no labels) is created at registration, so it exists at zero from the
// start. A family's series are added by the component with its bounded labels (topic,
// partition, reason, ...; never a key). Names follow STYLE.md:
// cachecar_<subsystem>_<name>_<unit>, counters end in _total.
//
// The registry owns every metric; the pointers stay valid as long as it lives.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#define CACHECAR_COUNTER_MEMBER(member, name, help) prometheus::Counter* member = nullptr;
#define CACHECAR_GAUGE_MEMBER(member, name, help) prometheus::Gauge* member = nullptr;
#define CACHECAR_COUNTER_FAMILY_MEMBER(member, name, help) \
  prometheus::Family<prometheus::Counter>* member = nullptr;
#define CACHECAR_GAUGE_FAMILY_MEMBER(member, name, help) \
  prometheus::Family<prometheus::Gauge>* member = nullptr;
#define CACHECAR_HISTOGRAM_FAMILY_MEMBER(member, name, help) \
  prometheus::Family<prometheus::Histogram>* member = nullptr;

// These expect `s` (the struct being filled) and `registry` in scope.
#define CACHECAR_COUNTER_INIT(member, name, help) \
  s.member = &prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
#define CACHECAR_GAUGE_INIT(member, name, help) \
  s.member = &prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
#define CACHECAR_COUNTER_FAMILY_INIT(member, name, help) \
  s.member = &prometheus::BuildCounter().Name(name).Help(help).Register(registry);
#define CACHECAR_GAUGE_FAMILY_INIT(member, name, help) \
  s.member = &prometheus::BuildGauge().Name(name).Help(help).Register(registry);
#define CACHECAR_HISTOGRAM_FAMILY_INIT(member, name, help) \
  s.member = &prometheus::BuildHistogram().Name(name).Help(help).Register(registry);

// Declares `struct Name` with a member per metric of TABLE and a static
// Register(prometheus::Registry&) that creates them.
#define CACHECAR_STATS_STRUCT(Name, TABLE)                                                  \
  struct Name {                                                                             \
    TABLE(CACHECAR_COUNTER_MEMBER, CACHECAR_GAUGE_MEMBER, CACHECAR_COUNTER_FAMILY_MEMBER,   \
          CACHECAR_GAUGE_FAMILY_MEMBER, CACHECAR_HISTOGRAM_FAMILY_MEMBER)                   \
    static Name Register(prometheus::Registry& registry) {                                  \
      Name s;                                                                               \
      TABLE(CACHECAR_COUNTER_INIT, CACHECAR_GAUGE_INIT, CACHECAR_COUNTER_FAMILY_INIT,       \
            CACHECAR_GAUGE_FAMILY_INIT, CACHECAR_HISTOGRAM_FAMILY_INIT)                     \
      return s;                                                                             \
    }                                                                                       \
  }
