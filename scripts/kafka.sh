#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft, broker+controller in one JVM) on loopback,
# for the demo and the integration tests. Jars come from Maven Central once and are cached.
#
#   scripts/kafka.sh fetch                 download the jars into the cache (idempotent)
#   scripts/kafka.sh start DIR             format DIR, start the broker, wait until it answers;
#                                          writes DIR/bootstrap (host:port) and DIR/pid
#   scripts/kafka.sh stop DIR              stop the broker started in DIR
#   scripts/kafka.sh resume DIR            start a stopped broker again, same ports and data
#   scripts/kafka.sh create-topic DIR NAME PARTITIONS [CONFIG=VALUE ...]
#   scripts/kafka.sh java DIR CLASS ARGS   run a Kafka tool class against the broker's jars
#
# Environment: CACHECAR_CACHE (default ~/.cache/cachecar) holds the jars;
# KAFKA_PORT / KAFKA_CONTROLLER_PORT pick ports (default: free ports chosen at start).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/service.sh
. "$here/lib/service.sh"
cache=${CACHECAR_CACHE:-$HOME/.cache/cachecar}
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")
libs=$cache/kafka-$kafka_version/libs

die() { echo "kafka.sh: $*" >&2; exit 1; }

fetch() {
  if [ -f "$libs/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  command -v java >/dev/null || die "java not found (apt-get install openjdk-17-jre-headless)"
  mkdir -p "$libs"
  echo "kafka.sh: fetching Apache Kafka $kafka_version jars into $libs" >&2
  mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$libs" >&2 || die "maven could not fetch the Kafka jars"
  touch "$libs/.complete"
}

run_java() {
  local dir=$1; shift
  java -Xmx512m -Dlog4j.configuration="file:$dir/log4j.properties" -cp "$libs/*" "$@"
}

start() {
  local dir=$1
  fetch
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    echo "kafka.sh: broker already running in $dir ($(cat "$dir/bootstrap"))" >&2
    return 0
  fi
  local port=${KAFKA_PORT:-$(free_port)}
  local cport=${KAFKA_CONTROLLER_PORT:-$(free_port)}
  rm -rf "$dir/data"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
log.segment.bytes=67108864
EOF
  cat >"$dir/log4j.properties" <<EOF
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$dir/broker.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
EOF
  local cluster_id
  cluster_id=$(run_java "$dir" kafka.tools.StorageTool random-uuid)
  run_java "$dir" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$dir/server.properties" >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; die "format failed"; }
  echo "127.0.0.1:$port" >"$dir/bootstrap"
  launch "$dir"
}

# Starts the JVM on DIR's formatted data and waits until it answers.
launch() {
  local dir=$1
  # setsid: the broker survives the shell that started it and is stopped by pid.
  setsid java -Xms256m -Xmx1g -XX:+UseG1GC \
      -Dlog4j.configuration="file:$dir/log4j.properties" \
      -cp "$libs/*" kafka.Kafka "$dir/server.properties" >>"$dir/stdout.log" 2>&1 &
  echo $! >"$dir/pid"
  # Ready when the broker answers a metadata request.
  local deadline=$((SECONDS + 90))
  until run_java "$dir" org.apache.kafka.tools.TopicCommand \
          --bootstrap-server "$(cat "$dir/bootstrap")" --list >/dev/null 2>&1; do
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || { tail -50 "$dir/stdout.log" "$dir/broker.log" >&2; die "broker exited"; }
    [ $SECONDS -lt $deadline ] || die "broker did not answer within 90s (see $dir/broker.log)"
    sleep 0.5
  done
  echo "kafka.sh: broker up at $(cat "$dir/bootstrap") (dir $dir)" >&2
}

resume() {
  local dir=$1
  [ -f "$dir/server.properties" ] || die "no broker was started in $dir"
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then return 0; fi
  fetch
  launch "$(cd "$dir" && pwd)"
}

stop() { stop_service "$1"; }

create_topic() {
  local dir=$1 name=$2 partitions=$3; shift 3
  local configs=()
  for c in "$@"; do configs+=(--config "$c"); done
  run_java "$dir" org.apache.kafka.tools.TopicCommand --bootstrap-server "$(cat "$dir/bootstrap")" \
      --create --if-not-exists --topic "$name" --partitions "$partitions" \
      --replication-factor 1 "${configs[@]}"
}

cmd=${1:-}; shift || true
case "$cmd" in
  fetch) fetch ;;
  start) start "${1:?usage: kafka.sh start DIR}" ;;
  stop) stop "${1:?usage: kafka.sh stop DIR}" ;;
  resume) resume "${1:?usage: kafka.sh resume DIR}" ;;
  create-topic) create_topic "$@" ;;
  java) dir=$1; shift; fetch; run_java "$dir" "$@" ;;
  *) die "usage: kafka.sh fetch|start DIR|stop DIR|resume DIR|create-topic DIR NAME PARTITIONS [K=V...]|java DIR CLASS ARGS" ;;
esac
