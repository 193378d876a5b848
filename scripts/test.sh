#!/usr/bin/env bash
# Installs what is needed, builds, and runs the whole test suite:
#   1. clang-tidy over sidecar/ and client/ (scripts/tidy.sh);
#   2. the unit tests of the store, notifier, materializer, Watch and RPCs under
#      AddressSanitizer + UndefinedBehaviorSanitizer, then under ThreadSanitizer
#      (scripts/sanitize.sh, each in its own build directory);
#   3. everything through ctest: unit tests, and integration tests that run the real
#      cachecar binary against a real Kafka broker (started and stopped by ctest fixtures).
# Extra arguments go to the last ctest (e.g. -L unit). QUICK=1 skips steps 1 and 2.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ -z "${QUICK:-}" ]; then
  scripts/tidy.sh build
  scripts/sanitize.sh asan
  scripts/sanitize.sh tsan
fi
exec ctest --test-dir build --output-on-failure -j2 --timeout 900 "$@"
