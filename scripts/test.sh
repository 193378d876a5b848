#!/usr/bin/env bash
# Installs what is needed, builds, and runs the whole test suite:
#   - ctest: unit tests, integration tests that run the real cachecar binary against a real
#     Kafka broker (started and stopped by ctest fixtures), and the k8s manifest checks;
#   - meanwhile, at low priority (the integration tests mostly wait on the broker and the
#     clock): clang-tidy over sidecar/ and client/ (scripts/tidy.sh), the unit tests of the
#     store, notifier, materializer, Watch and RPCs under AddressSanitizer + UBSan and
#     under ThreadSanitizer (scripts/sanitize.sh), and a build of the benchmarks.
# Extra arguments go to ctest (e.g. -L unit). QUICK=1 skips the checks.
# Exits non-zero if anything failed; the last line is ctest's summary of the main suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

logs=$(mktemp -d)
checks=""
if [ -z "${QUICK:-}" ]; then
  (
    rc=0
    for step in "scripts/tidy.sh build" "scripts/sanitize.sh asan" "scripts/sanitize.sh tsan" \
                "ninja -C build benchmarks"; do
      echo "=== $step"
      nice -n 15 $step || { rc=1; echo "=== FAILED: $step"; }
    done
    exit $rc
  ) >"$logs/checks" 2>&1 &
  checks=$!
fi

set +e
ctest --test-dir build --output-on-failure -j2 --timeout 900 "$@" 2>&1 | tee "$logs/ctest"
rc=${PIPESTATUS[0]}
if [ -n "$checks" ]; then
  wait "$checks"
  checks_rc=$?
  echo
  echo "=== checks: clang-tidy, ASan+UBSan, TSan, benchmarks build (exit $checks_rc)"
  cat "$logs/checks"
  [ "$checks_rc" -eq 0 ] || rc=1
  echo
  echo "=== main suite"
  grep -E '^[0-9]+% tests passed' "$logs/ctest" || true
fi
rm -rf "$logs"
exit "$rc"
