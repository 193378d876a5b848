#!/usr/bin/env bash
# A Confluent-compatible Schema Registry (Apicurio Registry, see scripts/registry/pom.xml) on
# loopback, for the tests of value_format: registry topics. Built once from Maven Central
# into the cache; its schemas are kept in an H2 file database under DIR, so a stopped and
# resumed registry still knows them.
#
#   scripts/registry.sh fetch          build the registry into the cache (idempotent)
#   scripts/registry.sh start DIR      start it, wait until it answers; writes DIR/url (the
#                                      Confluent API's base URL) and DIR/pid
#   scripts/registry.sh stop DIR       stop the registry started in DIR (its data stays)
#   scripts/registry.sh resume DIR     start a stopped registry again, same port and data
#
# Environment: CACHECAR_CACHE (default ~/.cache/cachecar); REGISTRY_PORT (default: a free
# port chosen at start).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/service.sh
. "$here/lib/service.sh"
cache=${CACHECAR_CACHE:-$HOME/.cache/cachecar}
version=$(sed -n 's:.*<apicurio.version>\(.*\)</apicurio.version>.*:\1:p' "$here/registry/pom.xml")
out=$cache/apicurio-registry-$version
app=$out/registry-1-runner.jar  # and $out/lib/ (Apicurio builds a legacy-jar)

die() { echo "registry.sh: $*" >&2; exit 1; }

fetch() {
  # Built from this very pom.xml (by content: a fresh clone's files are all new).
  local pom_sum
  pom_sum=$(sha256sum "$here/registry/pom.xml" | cut -d' ' -f1)
  if [ -f "$out/.complete" ] && [ "$(cat "$out/.complete")" = "$pom_sum" ]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  command -v java >/dev/null || die "java not found (apt-get install openjdk-17-jre-headless)"
  mkdir -p "$out"
  # Maven Central only: Apicurio's POMs also name repositories this machine cannot reach.
  cat >"$out/settings.xml" <<XML
<settings><mirrors><mirror><id>central</id><mirrorOf>*</mirrorOf>
<url>https://repo.maven.apache.org/maven2</url></mirror></mirrors></settings>
XML
  echo "registry.sh: building Apicurio Registry $version into $out" >&2
  mvn -q -B -s "$out/settings.xml" -f "$here/registry/pom.xml" package -DskipTests \
      -Dregistry.out="$out" >"$out/build.log" 2>&1 ||
    { tail -30 "$out/build.log" >&2; die "maven could not build the registry (see $out/build.log)"; }
  [ -f "$app" ] || die "the build made no $app"
  echo "$pom_sum" >"$out/.complete"
}

start() {
  local dir=$1
  fetch
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    echo "registry.sh: already running in $dir ($(cat "$dir/url"))" >&2
    return 0
  fi
  rm -rf "$dir/db"
  echo "${REGISTRY_PORT:-$(free_port)}" >"$dir/port"
  echo "http://127.0.0.1:$(cat "$dir/port")/apis/ccompat/v7" >"$dir/url"
  launch "$dir"
}

launch() {
  local dir=$1
  setsid env REGISTRY_DATASOURCE_URL="jdbc:h2:file:$dir/db/registry" \
      java -Xms64m -Xmx384m -Dquarkus.http.host=127.0.0.1 \
      -Dquarkus.http.port="$(cat "$dir/port")" -jar "$app" >>"$dir/registry.log" 2>&1 &
  echo $! >"$dir/pid"
  local deadline=$((SECONDS + 120))
  until curl -sf -m 2 "$(cat "$dir/url")/subjects" >/dev/null 2>&1; do
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || { tail -30 "$dir/registry.log" >&2; die "registry exited"; }
    [ $SECONDS -lt $deadline ] || die "registry did not answer within 120s (see $dir/registry.log)"
    sleep 0.5
  done
  echo "registry.sh: registry up at $(cat "$dir/url") (dir $dir)" >&2
}

resume() {
  local dir=$1
  [ -f "$dir/url" ] || die "no registry was started in $dir"
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then return 0; fi
  fetch
  launch "$(cd "$dir" && pwd)"
}

stop() { stop_service "$1"; }

cmd=${1:-}; shift || true
case "$cmd" in
  fetch) fetch ;;
  start) start "${1:?usage: registry.sh start DIR}" ;;
  stop) stop "${1:?usage: registry.sh stop DIR}" ;;
  resume) resume "${1:?usage: registry.sh resume DIR}" ;;
  *) die "usage: registry.sh fetch|start DIR|stop DIR|resume DIR" ;;
esac
