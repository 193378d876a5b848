#!/usr/bin/env bash
# Runs cachecar for real: installs and builds what it runs (scripts/setup.sh --demo), starts a
# single-node Kafka broker and a Schema Registry (Apicurio) on loopback, creates the example
# topics, feeds them examples/data/*.tsv and, through Confluent's Avro serializer, the
# orders of examples/data/orders.json, and runs
# cachecar with examples/cachecar.yaml in the foreground. Ctrl-C stops everything it started;
# so does `scripts/demo.sh stop` from another terminal.
#
# Then, in another terminal:
#   build/cachecarctl status
#   build/cachecarctl get users 9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d
#   build/cachecarctl list cacheInvalidation --prefix guest/ -o json
#   build/cachecarctl watch feature-flags --prefix "" --snapshot
#   build/cachecarctl get orders o-1001
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# DEMO_RUN_DIR, KAFKA_PORT, REGISTRY_PORT, CACHECAR_GRPC_ADDRESS and CACHECAR_HTTP_ADDRESS
# move the demo off its defaults (.run/, 9092, 8081, 127.0.0.1:50051, 127.0.0.1:9090), e.g.
# beside another one; DEMO_SKIP_SETUP=1 uses the binaries already built (tests/integration/test_demo.py).
run=${DEMO_RUN_DIR:-$root/.run}

stop_all() {
  if [ -f "$run/cachecar.pid" ]; then
    local pid
    pid=$(cat "$run/cachecar.pid")
    kill "$pid" 2>/dev/null || true
    # Let cachecar commit and close before its broker goes away.
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$run/cachecar.pid"
  fi
  [ ! -d "$run/registry" ] || scripts/registry.sh stop "$run/registry" || true
  scripts/kafka.sh stop "$run/kafka" || true
}

if [ "${1:-}" = "stop" ]; then
  stop_all
  echo "demo: stopped"
  exit 0
fi

[ -n "${DEMO_SKIP_SETUP:-}" ] || scripts/setup.sh --demo
mkdir -p "$run"
export KAFKA_PORT=${KAFKA_PORT:-9092}
scripts/kafka.sh start "$run/kafka"
trap stop_all EXIT
bootstrap=$(cat "$run/kafka/bootstrap")
export REGISTRY_PORT=${REGISTRY_PORT:-8081}
scripts/registry.sh start "$run/registry"
registry_url=$(cat "$run/registry/url")

scripts/kafka.sh create-topic "$run/kafka" users 4 cleanup.policy=compact >/dev/null
scripts/kafka.sh create-topic "$run/kafka" sessions 4 cleanup.policy=compact >/dev/null
scripts/kafka.sh create-topic "$run/kafka" cacheInvalidation 1 >/dev/null
scripts/kafka.sh create-topic "$run/kafka" feature-flags 1 cleanup.policy=compact >/dev/null
scripts/kafka.sh create-topic "$run/kafka" orders 2 cleanup.policy=compact >/dev/null
for f in examples/data/*.tsv; do
  topic=$(basename "$f" .tsv)
  kcat -P -b "$bootstrap" -t "$topic" -K $'\t' <"$f"
  echo "demo: produced $(wc -l <"$f") records to $topic" >&2
done
.venv/bin/python examples/clients/orders_producer.py "$bootstrap" "$registry_url"

rm -rf "$run/store"
cat >&2 <<MSG

demo: starting cachecar (gRPC ${CACHECAR_GRPC_ADDRESS:-127.0.0.1:50051}, metrics http://${CACHECAR_HTTP_ADDRESS:-127.0.0.1:9090}/metrics,
      Schema Registry $registry_url).
      In another terminal:
        build/cachecarctl status
        build/cachecarctl get users 9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d
        build/cachecarctl list cacheInvalidation --prefix guest/ -o json
        build/cachecarctl rejected users       # the one invalid user in the data, and why
        build/cachecarctl watch feature-flags --prefix "" --snapshot     # then, elsewhere:
        kcat -P -b $bootstrap -t feature-flags -K: <<< 'checkout.v2:off'   # then get it again
        build/cachecarctl get orders o-1001    # an Avro record (Confluent wire format), as JSON
        build/cachecarctl --original -o raw get orders o-1001 | od -c | head -2   # the bytes as in Kafka
        build/cachecarctl put orders o-1004 '{"id":"o-1004","customer":"ada","status":"PLACED","total_cents":1999,"items":[{"sku":"book-42","quantity":1}],"coupon":null}'
        .venv/bin/python examples/clients/app.py        # the clients: README "Use it from your app"
        node client/typescript/dist/examples/app.js
        build/example_app
      Ctrl-C (or scripts/demo.sh stop) stops cachecar and the broker.

MSG
KAFKA_BOOTSTRAP=$bootstrap REGISTRY_URL=$registry_url CACHECAR_STORE=$run/store CACHECAR_LOG_FORMAT=text \
  build/cachecar --config examples/cachecar.yaml &
echo $! >"$run/cachecar.pid"
wait "$(cat "$run/cachecar.pid")" || true
