#!/usr/bin/env bash
# clang-tidy with the checked-in .clang-tidy over every .cc of sidecar/ and client/ (and
# the headers they include from there). Any warning fails. Needs a configured build
# directory for its compile_commands.json (scripts/setup.sh makes build/).
#
#   scripts/tidy.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[ -f "$build/compile_commands.json" ] || { echo "tidy.sh: no $build/compile_commands.json: run scripts/setup.sh first" >&2; exit 2; }
tidy=$(command -v run-clang-tidy || command -v run-clang-tidy-14 || true)
[ -n "$tidy" ] || { echo "tidy.sh: run-clang-tidy not found (apt-get install clang-tidy)" >&2; exit 2; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Generated protobuf code is not ours to tidy; everything under sidecar/ and client/ is.
# (run-clang-tidy echoes each command; the counts of system-header warnings it hides are
# dropped.)
"$tidy" -p "$build" -quiet -j "$(nproc)" "$PWD/(sidecar|client)/.*\.cc\$" 2>&1 |
  sed 's/\x1b\[[0-9;]*m//g' |
  grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$|^Suppressed [0-9]+ warnings|^Use -header-filter|^clang-tidy(-[0-9]+)? |^$' |
  tee "$log" || true
# run-clang-tidy's own exit code counts only crashed runs in some versions: decide by the
# diagnostics it printed.
if grep -qE '(warning|error): ' "$log"; then
  echo "tidy.sh: clang-tidy found problems (above)" >&2
  exit 1
fi
echo "tidy.sh: clang-tidy clean on sidecar/ and client/"
