#!/usr/bin/env bash
# Builds the unit tests of the concurrent and memory-handling components with a sanitizer
# and runs them through ctest:
#
#   scripts/sanitize.sh asan    AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)
#   scripts/sanitize.sh tsan    ThreadSanitizer (build-tsan/)
#
# Only those tests and the libraries they link are built (no server, benchmarks or
# integration tests), at -O1 with line tables only (-g1: a report still names file and line)
# so the build stays short. Any report fails the run.
# Extra arguments go to ctest. Run scripts/setup.sh first (it installs the toolchain).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:?usage: scripts/sanitize.sh asan|tsan [ctest args]}
shift
exclude=()
case "$mode" in
  asan) sanitize=address,undefined ;;
  # Tests with an in-process gRPC server: Debian's gRPC is not built for TSan, which then
  # reports gRPC's own thread handoffs as races (see tests/tsan.supp).
  tsan) sanitize=thread; exclude=(-E '^(CacheServiceTest|AuthenticatedServiceTest|WatchReactorTest)\.') ;;
  *) echo "sanitize.sh: unknown mode '$mode' (asan or tsan)" >&2; exit 2 ;;
esac
dir=build-$mode
# The unit tests that exercise the store, the notifier, the materializer, Watch, RPCs and
# snapshots (hostile streams and files), and the transform worker (hostile filters).
tests=(store_test kafka_test watch_test rpc_test health_test api_test common_test peer_test
       transform_test registry_test)

if [ ! -f "$dir/build.ninja" ]; then
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DCACHECAR_SANITIZE="$sanitize" \
    -DCACHECAR_BUILD_BENCH=OFF -DCACHECAR_CARGO_TARGET_DIR="$PWD/build/cargo" >/dev/null
fi
ninja -C "$dir" "${tests[@]}"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp:${TSAN_OPTIONS:-}"
# Only the binaries built above have discovered tests; the others' placeholders carry no
# label, so `-L unit` runs exactly these.
exec ctest --test-dir "$dir" --output-on-failure -j2 --timeout 600 -L unit "${exclude[@]}" "$@"
