#!/usr/bin/env bash
# Installs what is needed, builds, and runs the whole test suite through ctest: unit tests,
# and integration tests that run the real cachecar binary against a real Kafka broker
# (started and stopped by ctest fixtures). Extra arguments go to ctest (e.g. -L unit).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec ctest --test-dir build --output-on-failure -j2 --timeout 900 "$@"
