#!/usr/bin/env bash
# End-to-end benchmarks against a real local Kafka broker. Prints one line per measurement;
# the README's tables come from this script's output (bench/results.txt keeps the last run).
#
#   bench/run.sh                 everything (about 18 minutes on 2 cores)
#   RECORDS=200000 bench/run.sh  a smaller topic
#   PHASES="serve" bench/run.sh  only some phases: floors catchup memory serve redis micro
#                                validation validator transforms registry put watch restart
#                                bootstrap outage
#   COMPARE_BIN=/path/to/other/cachecar bench/run.sh
#                                catch-up, Get, BatchGet and the watch fan-out also with that binary (e.g. one
#                                built from an earlier commit), alternating with this one in
#                                the same run, its lines labelled "before"
#
# Measures, each beside its baseline on the same machine:
#   catch-up  cachecar (start to ready, fresh store; also with store.sync: data) vs a bare
#             librdkafka consumer into nothing and a bare consumer into LMDB (10k-record
#             transactions)
#   get       Get QPS and p50/p99 at concurrency 1/16/64 vs a bare gRPC echo server,
#             same load driver
#   batchget  BatchGet(100 keys) keys/s at concurrency 16 vs the echo server and vs Redis
#             GET pipelined 16 deep (redis-benchmark -P 16) and Redis MGET of 100 random keys
#   memory    peak RSS during catch-up, RSS and anonymous RSS after catch-up and after the
#             Get load, for RECORDS keys and for RECORDS/10 keys
#   validation  catch-up with the topic's JSON Schema (bench/schemas/bench_record.json:
#             uuid/email/date-time formats, a pattern) vs without, alternating rounds
#   validator the validator alone vs valijson (bench/validator_bench, Google Benchmark)
#   transforms catch-up with a projection transform (jq; also the same filter through the
#             interpreter), with apply: merge-patch, with both, and with one view (by
#             .email; TRANSFORM_VARIANTS picks some), vs the plain
#             catch-up, alternating rounds; one record's transform by
#             engine: jaq in-process and through the worker (bench/transform_bench) vs
#             Debian's jq 1.6 (libjq) CLI over the same records
#   put       sequential Put latency to "applied" and to the broker's ack vs a bare
#             librdkafka produce (idempotent, acks=all), same broker, with store.sync none
#             and data; where a Put's time goes (the sidecar's stage histograms); and Put
#             throughput with 16 and 64 in flight
#   watch     Put -> Watch event latency with 1/100/1,000/10,000 watchers on the key, and
#             catch-up with 1,000 watchers attached vs none
#   restart   restart-to-ready of a caught-up RECORDS-key store (SIGTERM, then kill -9) vs
#             its first catch-up from Kafka
#   bootstrap a new pod's start to ready: from a ready peer's snapshot (bootstrap.peers)
#             vs replaying the topic from Kafka, at RECORDS and at BOOTSTRAP_LARGE (default
#             5 × RECORDS; 0 skips it) records, alternating rounds, each started after a
#             `sync` (the previous round's writes are not still going to disk); and the
#             serving peer's Get p50/p99
#             while it sends snapshots vs while it does not
#   outage    the broker stopped for OUTAGE_SECONDS (default 60): from the broker answering
#             again to cachecar's first successful Put and to a record produced meanwhile
#             by an independent producer (kcat) being readable
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
RECORDS=${RECORDS:-1000000}
PARTITIONS=${PARTITIONS:-16}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-8}
PHASES=" ${PHASES:-floors catchup memory serve redis micro validation validator transforms registry put watch restart bootstrap outage} "
phase() { [[ "$PHASES" == *" $1 "* ]]; }
B=$root/build/bench
work=$root/.run/bench
out=${RESULTS:-$root/bench/results.txt}  # RESULTS=file to keep the last full run
mkdir -p "$work"
: >"$out"
say() { echo "$*" | tee -a "$out"; }

SKIP_BUILD=1 scripts/setup.sh
ninja -C build all benchmarks >/dev/null

kdir=$work/kafka
scripts/kafka.sh start "$kdir"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  scripts/kafka.sh stop "$kdir" || true
}
trap cleanup EXIT
bootstrap=$(cat "$kdir/bootstrap")

# v2: the records carry every field of bench/schemas/bench_record.json (updatedAt too).
topic=bench-v2-$RECORDS
small_topic=bench-v2-small-$RECORDS
if ! scripts/kafka.sh java "$kdir" org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
     --list 2>/dev/null | grep -qx "$topic"; then
  scripts/kafka.sh create-topic "$kdir" "$topic" "$PARTITIONS" >/dev/null
  scripts/kafka.sh create-topic "$kdir" "$small_topic" "$PARTITIONS" >/dev/null
  "$B/bench_produce" --bootstrap "$bootstrap" --topic "$topic" --count "$RECORDS"
  "$B/bench_produce" --bootstrap "$bootstrap" --topic "$small_topic" --count $((RECORDS / 10))
fi

say "# cachecar benchmarks $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores; $RECORDS records, $PARTITIONS partitions, ~180-byte JSON"
say "## catch-up (records/s)"
phase floors && for mode in consume lmdb; do
  say "floor $("$B/catchup_floor" --bootstrap "$bootstrap" --topic "$topic" --partitions "$PARTITIONS" --mode $mode --lmdb-dir "$work/floor-lmdb")"
done
rm -rf "$work/floor-lmdb"

# Runs cachecar on a fresh store for $1 (topic) in folder $2, with $3 as extra fields of
# the topic (YAML flow style, e.g. ', schema: "/x.json"'); leaves its pid in $cc_pid, its
# gRPC port in $cc_port and its catch-up time in $catchup.
start_cachecar() {
  launch_cachecar "$@"
  await_ready "$2"
}

# As start_cachecar, without waiting for ready: returns once it listens.
launch_cachecar() {
  local t=$1 name=$2 extra=${3:-}
  [ -n "${KEEP_STORE:-}" ] || rm -rf "$work/$name"
  mkdir -p "$work/$name"
  cat >"$work/$name/cachecar.yaml" <<EOF
kafka: {bootstrap_servers: "$bootstrap"}
store: {path: "$work/$name/store"${STORE_SYNC:+, sync: $STORE_SYNC}}
grpc: {address: "127.0.0.1:0"}
http: {address: "127.0.0.1:0"}
topics: [{name: "$t"$extra}]
${CC_EXTRA:-}
EOF
  launched_at=$(date +%s.%N)
  ${CC_BIN:-build/cachecar} --config "$work/$name/cachecar.yaml" 2>"$work/$name/log" &
  cc_pid=$!
  pids+=("$cc_pid")
  until grep -q '"grpc_port"' "$work/$name/log"; do
    kill -0 "$cc_pid" || { cat "$work/$name/log"; exit 1; }
    sleep 0.05
  done
  cc_port=$(grep -o '"grpc_port":[0-9]*' "$work/$name/log" | head -1 | cut -d: -f2)
  cc_http_port=$(grep -o '"http_port":[0-9]*' "$work/$name/log" | head -1 | cut -d: -f2)
}

# Mean microseconds per observation of each histogram series, between two /metrics scrapes:
# stage_means BEFORE AFTER NAME=SERIES... (SERIES: the metric name and labels, as scraped).
stage_means() {
  local before=$1 after=$2 out="" pair name series
  shift 2
  for pair in "$@"; do
    name=${pair%%=*}; series=${pair#*=}
    out+=$(awk -v m="${series%%\{*}" -v l="$(grep -o '{.*' <<<"$series")" '
      FNR == 1 { file++ }
      index($0, m "_sum" l " ") == 1 { v[file, "sum"] = $NF }
      index($0, m "_count" l " ") == 1 { v[file, "count"] = $NF }
      END {
        c = v[2, "count"] - v[1, "count"]
        if (c > 0) printf " %s_us=%.0f", n, (v[2, "sum"] - v[1, "sum"]) / c * 1e6
        else printf " %s_us=none", n
      }' n="$name" "$before" "$after")
  done
  echo "${out# }"
}

await_ready() {
  local name=$1
  until grep -q '"ready: every topic caught up"' "$work/$name/log"; do
    kill -0 "$cc_pid" || { cat "$work/$name/log"; exit 1; }
    sleep 0.05
  done
  catchup=$(grep -o '"catchup_seconds":[0-9.]*' "$work/$name/log" | cut -d: -f2)
}

ensure_topic() {  # creates topic $1 with $PARTITIONS partitions unless it exists
  scripts/kafka.sh java "$kdir" org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
    --list 2>/dev/null | grep -qx "$1" ||
    scripts/kafka.sh create-topic "$kdir" "$1" "$PARTITIONS" >/dev/null
}

cpu_ticks() {  # user + system CPU time of process $1 so far, in clock ticks
  awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"
}
# Runs a command (a load client) and prints its output line followed by the CPU the
# cachecar process $1 spent meanwhile, in total and per delivery (the line's deliveries=N/M):
# on a 2-core machine the load client takes most of the CPU, so latency alone says little
# about what the sidecar's own work costs.
with_server_cpu() {
  local pid=$1; shift
  local hz before after line
  hz=$(getconf CLK_TCK)
  before=$(cpu_ticks "$pid")
  line=$("$@")
  after=$(cpu_ticks "$pid")
  echo "$line $(awk -v a="$before" -v b="$after" -v hz="$hz" -v l="$line" 'BEGIN{
    ms = (b - a) * 1000 / hz; n = 0
    if (match(l, /deliveries=[0-9]+/)) n = substr(l, RSTART + 11, RLENGTH - 11) + 0
    printf "server_cpu_ms=%.0f", ms
    if (n > 0) printf " server_cpu_us_per_delivery=%.2f", ms * 1000 / n }')"
}

mem() {  # peak RSS, RSS, anonymous RSS of $1 in MiB
  awk '/VmHWM|VmRSS|RssAnon/ {printf "%s=%.0fMiB ", $1, $2/1024}' "/proc/$1/status"
}

runs="1 2"; phase catchup || runs=2
# The binaries measured: this build's, and COMPARE_BIN's as "before" (alternating).
# Also this build with store.sync: data (an fsync per commit; the default is none).
labels=(cachecar sync-data); bins=("build/cachecar" "build/cachecar"); syncs=("" data)
if [ -n "${COMPARE_BIN:-}" ]; then labels+=(before); bins+=("$COMPARE_BIN"); syncs+=(""); fi
declare -A port_of pid_of
for run in $runs; do
  for i in "${!bins[@]}"; do
    CC_BIN=${bins[$i]} STORE_SYNC=${syncs[$i]} start_cachecar "$topic" "catchup-$run-${labels[$i]}"
    say "$(printf '%-9s' "${labels[$i]}") run=$run records=$RECORDS seconds=$catchup records_per_second=$(awk -v n="$RECORDS" -v s="$catchup" 'BEGIN{printf "%.0f", n/s}') $(mem "$cc_pid")"
    if [ "$run" = 2 ] && [ "${labels[$i]}" != sync-data ]; then
      port_of[${labels[$i]}]=$cc_port; pid_of[${labels[$i]}]=$cc_pid
    else
      kill "$cc_pid"; wait "$cc_pid" || true
    fi
  done
done
# The sync mode changes only the writes: the phases below measure the default.
labels=("${labels[0]}" "${labels[@]:2}"); bins=("${bins[0]}" "${bins[@]:2}")
big_pid=${pid_of[cachecar]}
big_port=${port_of[cachecar]}

if phase memory; then
  say "## memory after catch-up"
  say "keys=$RECORDS $(mem "$big_pid")"
  start_cachecar "$small_topic" small
  say "keys=$((RECORDS / 10)) $(mem "$cc_pid")"
  kill "$cc_pid"; wait "$cc_pid" || true
fi

"$B/echo_server" --address 127.0.0.1:0 >"$work/echo.out" &
pids+=($!)
echo_pid=$!
until grep -q port= "$work/echo.out"; do sleep 0.05; done
echo_port=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' "$work/echo.out")

# Redis, for the BatchGet comparison: every key of the keyspace present (redis-benchmark's
# own SET -r fills only ~63% of it, and a miss is cheaper to serve than a hit).
rport=
if phase redis && command -v redis-server >/dev/null; then
  rport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null &
  pids+=($!)
  until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.05; done
  python3 - "$RECORDS" <<'PY' | redis-cli -p "$rport" --pipe >/dev/null
import sys
n, v = int(sys.argv[1]), "x" * 185
w = sys.stdout.write
for i in range(n):
    k = "key:%012d" % i
    w("*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$185\r\n%s\r\n" % (len(k), k, v))
PY
fi

# Redis MGET of 100 random keys, 16 clients: the like-for-like batched read beside
# BatchGet(100) at concurrency 16. Prints its requests/s and keys/s.
redis_mget() {
  local args rps
  args=$(for _ in $(seq 100); do printf 'key:__rand_int__ '; done)
  # shellcheck disable=SC2086  # 100 arguments
  rps=$(redis-benchmark -p "$rport" -n $((RECORDS / 10)) -r "$RECORDS" -c 16 -q MGET $args |
        tr '\r' '\n' | grep 'requests per second' | tail -1 |
        sed 's/.*: \([0-9.]*\) requests per second.*/\1/')
  awk -v r="$rps" 'BEGIN { printf "MGET(100) requests_per_second=%.0f keys_per_second=%.0f", r, r * 100 }'
}

if phase serve; then
say "## get (QPS, latency) — same load driver for both"
for c in 1 16 64; do
  say "echo     $("$B/load_driver" --target 127.0.0.1:$echo_port --topic "$topic" --keys "$RECORDS" --concurrency $c --seconds "$SECONDS_PER_RUN")"
  for l in "${labels[@]}"; do
    say "$(printf '%-8s' "$l") $("$B/load_driver" --target 127.0.0.1:${port_of[$l]} --topic "$topic" --keys "$RECORDS" --concurrency $c --seconds "$SECONDS_PER_RUN")"
  done
done
say "## batchget of 100 keys at concurrency 16; redis: GET pipelined 16 deep, 16 clients, and MGET of 100 keys, 16 clients, all hits"
say "## (three alternating rounds: this machine's noise is about ±10%)"
for round in 1 2 3; do
  say "echo     $("$B/load_driver" --target 127.0.0.1:$echo_port --topic "$topic" --keys "$RECORDS" --method batchget --batch 100 --concurrency 16 --seconds "$SECONDS_PER_RUN")"
  for l in "${labels[@]}"; do
    say "$(printf '%-8s' "$l") $("$B/load_driver" --target 127.0.0.1:${port_of[$l]} --topic "$topic" --keys "$RECORDS" --method batchget --batch 100 --concurrency 16 --seconds "$SECONDS_PER_RUN")"
  done
  [ -z "$rport" ] || say "redis    $(redis-benchmark -p "$rport" -t get -n $((RECORDS * 3)) -r "$RECORDS" -d 185 -c 16 -P 16 -q | tr '\r' '\n' | grep -E 'GET: [0-9]' | tail -1)"
  [ -z "$rport" ] || say "redis-mget $(redis_mget)"
done
say "## memory after the Get/BatchGet load"
say "keys=$RECORDS $(mem "$big_pid")"
fi
for l in "${labels[@]}"; do kill "${pid_of[$l]}" 2>/dev/null || true; done
kill "$echo_pid"; wait "${pid_of[@]}" "$echo_pid" 2>/dev/null || true

schema=$root/bench/schemas/bench_record.json
if phase validation; then
  say "## catch-up with and without the topic's JSON Schema (alternating rounds)"
  for round in 1 2 3; do
    for with in off on; do
      extra=; [ "$with" = off ] || extra=", schema: \"$schema\", on_invalid: fail"
      start_cachecar "$topic" "validation-$with" "$extra"
      say "validation=$with round=$round records=$RECORDS seconds=$catchup records_per_second=$(awk -v n="$RECORDS" -v s="$catchup" 'BEGIN{printf "%.0f", n/s}')"
      kill "$cc_pid"; wait "$cc_pid" || true
    done
  done
fi

if phase transforms; then
  say "## catch-up with a transform and with merge-patch vs plain (alternating rounds)"
  projection='{id, email, name: .displayName, active}'
  for round in 1 2 3; do
    for variant in ${TRANSFORM_VARIANTS:-plain projection interpreted merge-patch both view}; do
      case $variant in
        plain) extra= ;;
        projection) extra=", transform: \"$projection\"" ;;
        # The same projection behind `. |`, which the short path does not take: what any
        # filter the interpreter must run costs.
        interpreted) extra=", transform: \". | $projection\"" ;;
        merge-patch) extra=", apply: merge-patch" ;;
        both) extra=", transform: \"$projection\", apply: merge-patch" ;;
        # One view keyed by each entry's email (every key under one view key).
        view) extra=", views: [{name: \"$topic-by-email\", key: \".email\"}]" ;;
      esac
      start_cachecar "$topic" "transforms-$variant" "$extra"
      say "$(printf '%-12s' "$variant") round=$round records=$RECORDS seconds=$catchup records_per_second=$(awk -v n="$RECORDS" -v s="$catchup" 'BEGIN{printf "%.0f", n/s}')"
      kill "$cc_pid"; wait "$cc_pid" || true
    done
  done
  say "## one record's transform: jaq in-process, through the worker (batches of 2,000), merge-patch; jq 1.6 CLI"
  "$B/transform_bench" --benchmark_min_time=1 2>/dev/null | grep -E '^BM_' | tee -a "$out"
  if command -v jq >/dev/null; then
    n=200000
    "$B/transform_bench" --benchmark_filter=none >/dev/null 2>&1 || true
    awk -v n=$n 'BEGIN{for (i = 0; i < n; i++) printf "{\"id\":\"%08x-1111-4222-8333-%012d\",\"email\":\"user%d@example.com\",\"displayName\":\"User %d\",\"n\":%d,\"active\":true,\"pad\":\"xxxxxxxxx\",\"updatedAt\":\"2026-11-%02dT%02d:%02d:%02dZ\"}\n", i, i, i, i, i, 1 + i % 28, int(i / 3600) % 24, int(i / 60) % 60, i % 60}' >"$work/records.jsonl"
    started=$(date +%s.%N)
    jq -c "$projection" "$work/records.jsonl" >/dev/null
    say "jq-1.6-cli records=$n records_per_second=$(awk -v n=$n -v a="$started" -v b="$(date +%s.%N)" 'BEGIN{printf "%.0f", n/(b-a)}') ($(jq --version))"
  fi
fi

if phase registry; then
  # The same records as $topic in the Confluent wire format, each format's schema registered
  # in a real registry (scripts/registry.sh); catch-up of each beside the raw-JSON one.
  say "## catch-up of Schema Registry topics (registry-json validates with the registered JSON Schema; +original keeps the wire-format bytes too) vs raw JSON (alternating rounds)"
  rdir=$work/registry
  scripts/registry.sh start "$rdir"
  pids+=("$(cat "$rdir/pid")")
  rurl=$(cat "$rdir/url")
  register() {  # register SUBJECT TYPE FILE -> the schema id
    python3 -c 'import json,sys; print(json.dumps({"schemaType": sys.argv[1], "schema": open(sys.argv[2]).read()}))' "$2" "$3" |
      curl -sf -X POST -H 'Content-Type: application/vnd.schemaregistry.v1+json' --data @- "$rurl/subjects/$1/versions" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
  }
  declare -A reg_topic
  for format in registry-json avro protobuf; do
    case $format in
      registry-json) type=JSON file=bench/schemas/bench_record_plain.json ;;
      avro) type=AVRO file=bench/schemas/bench_record.avsc ;;
      protobuf) type=PROTOBUF file=bench/schemas/bench_record.proto ;;
    esac
    reg_topic[$format]=bench-reg-$format-$RECORDS
    id=$(register "${reg_topic[$format]}-value" "$type" "$file")
    # A fresh registry numbers its schemas anew: the topic is written anew with these ids.
    scripts/kafka.sh java "$kdir" org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
      --delete --if-exists --topic "${reg_topic[$format]}" >/dev/null 2>&1 || true
    until ! scripts/kafka.sh java "$kdir" org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
        --list 2>/dev/null | grep -qx "${reg_topic[$format]}"; do sleep 0.5; done
    ensure_topic "${reg_topic[$format]}"
    "$B/bench_produce" --bootstrap "$bootstrap" --topic "${reg_topic[$format]}" --count "$RECORDS" \
      --format "$format" --schema-id "$id" >/dev/null
  done
  CC_EXTRA="registry: {url: \"$rurl\"}"
  # "+original": the same topic keeping each record's wire-format bytes beside its JSON
  # (keep_original: true), so reads can serve them; the others keep only the JSON.
  for round in 1 2 3; do
    for format in json registry-json avro protobuf avro+original protobuf+original; do
      if [ "$format" = json ]; then
        start_cachecar "$topic" "registry-$format"
      elif [ "${format%+original}" != "$format" ]; then
        start_cachecar "${reg_topic[${format%+original}]}" "registry-$format" \
          ", value_format: registry, keep_original: true"
      else
        start_cachecar "${reg_topic[$format]}" "registry-$format" \
          ", value_format: registry, keep_original: false"
      fi
      say "$(printf '%-14s' "$format") round=$round records=$RECORDS seconds=$catchup records_per_second=$(awk -v n="$RECORDS" -v s="$catchup" 'BEGIN{printf "%.0f", n/s}')"
      kill "$cc_pid"; wait "$cc_pid" || true
    done
  done
  CC_EXTRA=
  scripts/registry.sh stop "$rdir"
  say "## one registry record decoded, by format (bench/registry_bench): Avro, Protobuf with cachecar's printer, the Protobuf parse alone and with libprotobuf's JSON converter"
  "$B/registry_bench" --benchmark_min_time=1 2>/dev/null | grep -E '^BM_' | tee -a "$out"
fi

if phase validator; then
  say "## validator alone: cachecar (Rust jsonschema) vs valijson, same schema and documents"
  "$B/validator_bench" --benchmark_min_time=1 2>/dev/null | grep -E '^BM_' | tee -a "$out"
fi

if phase put; then
  put_topic=bench-put; stages=()
  ensure_topic "$put_topic"
  # store.sync none (the default) and data (an fsync per commit), alternating with a bare
  # producer; then where a Put's time goes in each.
  say "## sequential write latency (one write in flight), same broker; alternating rounds"
  for round in 1 2 3; do
    say "produce          $("$B/put_latency" --mode produce --bootstrap "$bootstrap" --topic "$put_topic")"
    for sync in none data; do
      STORE_SYNC=$sync start_cachecar "$put_topic" "put-$sync" ", schema: \"$schema\", read_only: false"
      say "$(printf '%-16s' "put sync=$sync") $("$B/put_latency" --mode put --target "127.0.0.1:$cc_port" --topic "$put_topic")"
      say "$(printf '%-16s' "put-ack sync=$sync") $("$B/put_latency" --mode ack --target "127.0.0.1:$cc_port" --topic "$put_topic")"
      if [ "$round" = 3 ]; then
        # The sidecar's own histograms around one more run, as means (the client's mean
        # beside them; the rest is the gRPC round trip on loopback).
        curl -s "127.0.0.1:$cc_http_port/metrics" >"$work/put-before.prom"
        client=$("$B/put_latency" --mode put --warmup 0 --target "127.0.0.1:$cc_port" --topic "$put_topic")
        curl -s "127.0.0.1:$cc_http_port/metrics" >"$work/put-after.prom"
        stage="cachecar_write_stage_duration_seconds"
        stages+=("put-stages sync=$sync writes=$(sed 's/.*writes=\([0-9]*\).*/\1/' <<<"$client") client_mean_us=$(sed 's/.*mean_us=\([0-9]*\).*/\1/' <<<"$client") $(stage_means \
            "$work/put-before.prom" "$work/put-after.prom" \
            "server=cachecar_rpc_duration_seconds{code=\"OK\",method=\"Put\"}" \
            "check=$stage{stage=\"check\",topic=\"$put_topic\"}" \
            "ack=$stage{stage=\"ack\",topic=\"$put_topic\"}" \
            "apply=$stage{stage=\"apply\",topic=\"$put_topic\"}" \
            "batch_delay=cachecar_materializer_batch_delay_seconds" \
            "commit=cachecar_store_commit_duration_seconds")")
      fi
      kill "$cc_pid"; wait "$cc_pid" || true
    done
  done
  say "## where a Put's time goes (means over one run of sequential Puts; server-side stages from /metrics)"
  for line in "${stages[@]}"; do say "$line"; done
  say "## Put throughput, 16 and 64 in flight, each waiting until applied (bench/load_driver --method put)"
  for sync in none data; do
    STORE_SYNC=$sync start_cachecar "$put_topic" "put-load-$sync" ", schema: \"$schema\", read_only: false"
    for c in 16 64; do
      say "$(printf '%-16s' "put sync=$sync") $("$B/load_driver" --target "127.0.0.1:$cc_port" --topic "$put_topic" --method put --keys 100000 --concurrency $c --seconds "$SECONDS_PER_RUN")"
    done
    kill "$cc_pid"; wait "$cc_pid" || true
  done
fi

if phase micro; then
  say "## store micro-benchmarks (Google Benchmark)"
  "$B/store_bench" --benchmark_min_time=1 2>/dev/null | grep -E '^BM_' | tee -a "$out"
fi

if phase watch; then
  watch_topic=bench-watch
  ensure_topic "$watch_topic"
  start_cachecar "$watch_topic" watch ", read_only: false"
  say "## Put -> Watch event latency, 100 Puts 100 ms apart (first 5 not timed); every delivery timed"
  say "## N watchers open, one of them on the Put key"
  for n in 1 100 1000 10000; do
    say "$("$B/watch_latency" --target "127.0.0.1:$cc_port" --topic "$watch_topic" --watchers $n --receivers 1)"
  done
  say "## N watchers, all on the Put key (each Put fans out to all N)"
  for n in 100 1000 10000; do
    say "$(with_server_cpu "$cc_pid" "$B/watch_latency" --target "127.0.0.1:$cc_port" --topic "$watch_topic" --watchers $n)"
  done
  kill "$cc_pid"; wait "$cc_pid" || true
  if [ -n "${COMPARE_BIN:-}" ]; then
    say "## N watchers all on the Put key, this build vs COMPARE_BIN (\"before\"), alternating rounds"
    for round in 1 2 3; do
      for i in "${!bins[@]}"; do
        CC_BIN=${bins[$i]} start_cachecar "$watch_topic" "watch-${labels[$i]}" ", read_only: false"
        for n in 1000 10000; do
          say "${labels[$i]} round=$round $(with_server_cpu "$cc_pid" "$B/watch_latency" --target "127.0.0.1:$cc_port" --topic "$watch_topic" --watchers $n)"
        done
        kill "$cc_pid"; wait "$cc_pid" || true
      done
    done
  fi
  say "## catch-up with 1,000 watchers attached (one per key, allow_cold_cache) vs none; alternating rounds"
  for round in 1 2 3; do
    for with in 0 1000; do
      launch_cachecar "$topic" "watch-catchup-$with"
      if [ "$with" -gt 0 ]; then
        rm -f "$work/hold.fifo"; mkfifo "$work/hold.fifo"
        "$B/watch_latency" --mode hold --target "127.0.0.1:$cc_port" --topic "$topic" \
          --watchers "$with" <"$work/hold.fifo" >"$work/hold.out" &
        holder=$!
        exec 7>"$work/hold.fifo"
      fi
      await_ready "watch-catchup-$with"
      line="watchers=$with round=$round records=$RECORDS seconds=$catchup records_per_second=$(awk -v n="$RECORDS" -v s="$catchup" 'BEGIN{printf "%.0f", n/s}')"
      if [ "$with" -gt 0 ]; then
        exec 7>&-
        wait "$holder" || true
        line="$line holder: $(tr '\n' ' ' <"$work/hold.out")"
      fi
      say "$line"
      kill "$cc_pid"; wait "$cc_pid" || true
    done
  done
fi

# Seconds since $launched_at (process start), to the millisecond.
since_launch() { awk -v a="$launched_at" -v b="$(date +%s.%N)" 'BEGIN{printf "%.3f", b-a}'; }

if phase restart; then
  say "## restart to ready, $RECORDS keys (nothing is replayed); baseline: the first catch-up"
  start_cachecar "$topic" restart
  say "first start: catch-up seconds=$catchup"
  for how in TERM KILL; do
    for round in 1 2 3; do
      kill -"$how" "$cc_pid"; wait "$cc_pid" || true
      KEEP_STORE=1 launch_cachecar "$topic" restart
      listening=$(since_launch)
      await_ready restart
      say "restart after SIG$how round=$round: listening after ${listening}s, ready after $(since_launch)s (catchup_seconds=$catchup)"
    done
  done
  kill "$cc_pid"; wait "$cc_pid" || true
fi

if phase bootstrap; then
  echo "bench-peer-token" >"$work/peer-token"
  peer_cfg="peers: {listen: \"127.0.0.1:0\", token_file: \"$work/peer-token\", max_bytes_per_second: ${BOOTSTRAP_RATE:-1099511627776}}"
  # A peer caught up on topic $1 ($2 records), then alternating new pods: replay, bootstrap.
  boot_rounds() {
    local t=$1 n=$2 peer_pid peer_port peer_grpc
    CC_EXTRA=$peer_cfg start_cachecar "$t" boot-peer
    peer_pid=$cc_pid; peer_grpc=$cc_port
    peer_port=$(grep -o '"peer_port":[0-9]*' "$work/boot-peer/log" | head -1 | cut -d: -f2)
    for round in 1 2 3; do
      # Each start on a quiet disk: the previous round's store is not still being written back.
      sync
      launch_cachecar "$t" boot-new
      await_ready boot-new
      say "records=$n round=$round replay from Kafka: ready after $(since_launch)s"
      kill "$cc_pid"; wait "$cc_pid" || true
      sync
      CC_EXTRA="peers: {token_file: \"$work/peer-token\"}
bootstrap: {peers: [\"127.0.0.1:$peer_port\"]}" launch_cachecar "$t" boot-new
      await_ready boot-new
      local ready=$(since_launch)
      local filled=$(grep '"store filled from a snapshot"' "$work/boot-new/log")
      say "records=$n round=$round bootstrap from a peer: ready after ${ready}s (snapshot $(grep -o '"bytes":[0-9]*' <<<"$filled" | cut -d: -f2) bytes in $(grep -o '"seconds":[0-9.]*' <<<"$filled" | cut -d: -f2)s, store $(du -sm "$work/boot-new/store" | cut -f1) MiB)"
      kill "$cc_pid"; wait "$cc_pid" || true
    done
    if [ "$n" = "$RECORDS" ]; then
      say "## the serving peer's Get (concurrency 16) without and during snapshot transfers (cachecarctl snapshot save in a loop)"
      for round in 1 2; do
        say "no transfer round=$round $("$B/load_driver" --target 127.0.0.1:$peer_grpc --topic "$t" --keys "$n" --concurrency 16 --seconds "$SECONDS_PER_RUN")"
        ( while :; do build/cachecarctl -a 127.0.0.1:$peer_grpc snapshot save "$work/peer.snap" >/dev/null || exit 1; done ) &
        local saver=$!
        say "transfers round=$round $("$B/load_driver" --target 127.0.0.1:$peer_grpc --topic "$t" --keys "$n" --concurrency 16 --seconds "$SECONDS_PER_RUN")"
        pkill -P "$saver" 2>/dev/null || true
        kill "$saver" 2>/dev/null; wait "$saver" 2>/dev/null || true
      done
      rm -f "$work/peer.snap" "$work/peer.snap.partial"
      say "transfers completed by the peer: $(curl -s http://127.0.0.1:$(grep -o '"http_port":[0-9]*' "$work/boot-peer/log" | head -1 | cut -d: -f2)/metrics | grep '^cachecar_snapshot_transfers_total{result="complete"}' | awk '{print $2}')"
    fi
    kill "$peer_pid"; wait "$peer_pid" || true
    rm -rf "$work/boot-new" "$work/boot-peer"
  }
  say "## new pod to ready: bootstrap from a peer vs replay from Kafka (peer rate limit ${BOOTSTRAP_RATE:-none})"
  boot_rounds "$topic" "$RECORDS"
  BOOTSTRAP_LARGE=${BOOTSTRAP_LARGE:-$((RECORDS * 5))}
  large_topic=bench-v2-boot-$BOOTSTRAP_LARGE
  if [ "$BOOTSTRAP_LARGE" -gt 0 ] && ! scripts/kafka.sh java "$kdir" org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
       --list 2>/dev/null | grep -qx "$large_topic"; then
    scripts/kafka.sh create-topic "$kdir" "$large_topic" "$PARTITIONS" >/dev/null
    "$B/bench_produce" --bootstrap "$bootstrap" --topic "$large_topic" --count "$BOOTSTRAP_LARGE"
  fi
  [ "$BOOTSTRAP_LARGE" -gt 0 ] && boot_rounds "$large_topic" "$BOOTSTRAP_LARGE"
fi

if phase outage; then
  OUTAGE_SECONDS=${OUTAGE_SECONDS:-60}
  out_topic=bench-outage
  ensure_topic "$out_topic"
  start_cachecar "$out_topic" outage ", read_only: false, value_format: bytes"
  ctl() { build/cachecarctl -a "127.0.0.1:$cc_port" --timeout-ms 2000 "$@"; }
  ctl put "$out_topic" warm x >/dev/null
  say "## broker outage of ${OUTAGE_SECONDS}s; times from the broker answering again (kafka.sh resume)"
  scripts/kafka.sh stop "$kdir"
  sleep "$OUTAGE_SECONDS"
  put_rc=0; ctl put "$out_topic" during x >/dev/null 2>&1 || put_rc=$?
  scripts/kafka.sh resume "$kdir" 2>/dev/null
  back=$(date +%s.%N)
  elapsed() { awk -v a="$back" -v b="$(date +%s.%N)" 'BEGIN{printf "%.3f", b-a}'; }
  # Baseline: a new client (kcat) producing as soon as the broker answers; it exits once
  # the broker has acknowledged its record.
  (echo "after" | kcat -P -b "$bootstrap" -t "$out_topic" -k produced-after -X acks=all &&
     elapsed >"$work/kcat.done") &
  kcat_pid=$!
  until ctl put "$out_topic" p x >/dev/null 2>&1; do sleep 0.05; done
  put_ok=$(elapsed)
  until ctl get "$out_topic" produced-after >/dev/null 2>&1; do sleep 0.05; done
  read_ok=$(elapsed)
  wait "$kcat_pid" || true
  say "put during the outage: exit $put_rc (1 = refused, UNAVAILABLE); after it: kcat (new client) acknowledged after $(cat "$work/kcat.done")s; cachecar's first Put applied after ${put_ok}s; kcat's record readable through cachecar after ${read_ok}s"
  kill "$cc_pid"; wait "$cc_pid" || true
fi
