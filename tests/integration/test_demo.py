"""scripts/demo.sh, as the README's first command runs it (with the binaries already built
and ports of its own): the broker, the example topics and data, and the walkthrough's
commands give what the README says they give."""
import json
import os
import re
import signal
import socket
import subprocess
import urllib.request

from conftest import CACHECARCTL_BIN, SOURCE_DIR, deadline_wait


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_demo_serves_its_examples_and_its_walkthrough_works(tmp_path):
    grpc_address = f"127.0.0.1:{free_port()}"
    env = dict(os.environ, DEMO_SKIP_SETUP="1", DEMO_RUN_DIR=str(tmp_path / "run"),
               KAFKA_PORT=str(free_port()), REGISTRY_PORT=str(free_port()),
               CACHECAR_GRPC_ADDRESS=grpc_address,
               CACHECAR_HTTP_ADDRESS=f"127.0.0.1:{free_port()}", CACHECAR_ADDRESS=grpc_address)
    log = open(tmp_path / "demo.log", "wb")
    demo = subprocess.Popen(["scripts/demo.sh"], cwd=SOURCE_DIR, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)

    def ctl(*args):
        return subprocess.run([CACHECARCTL_BIN, *args], env=env, capture_output=True, text=True,
                              timeout=30)

    try:
        def ready():
            assert demo.poll() is None, (tmp_path / "demo.log").read_text()
            return ctl("status").returncode == 0
        deadline_wait(ready, timeout=240, what="the demo's cachecar ready")

        got = ctl("get", "users", "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "-o", "json")
        assert got.returncode == 0, got
        assert json.loads(got.stdout)["value"]["email"] == "grace@example.com", got.stdout

        # Views of the example config: by email, and a user's sessions.
        got = ctl("get", "users-by-email", "ada@example.com", "-o", "json")
        assert got.returncode == 0, got
        assert [m["key"] for m in json.loads(got.stdout)["value"]] == [
            "6f1c2a9e-8b1d-4c3e-9a57-1f0e2d3c4b5a"], got.stdout
        got = ctl("get", "sessions-by-user", "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "-o", "json")
        assert got.returncode == 0, got
        assert "c0ffee00-0000-4000-8000-000000000002" in [
            m["key"] for m in json.loads(got.stdout)["value"]], got.stdout

        status = ctl("status")
        assert status.returncode == 0, status
        lines = [line for line in status.stdout.splitlines() if line.startswith("users-by-email ")]
        assert len(lines) == 1 and "ready [view of users]" in lines[0], status.stdout

        # The data holds one invalid user: never served, listed with its reason.
        bad = "0badc0de-0000-4000-8000-000000000000"
        assert ctl("get", "users", bad).returncode == 3
        rejected = ctl("rejected", "users", "-o", "json")
        assert rejected.returncode == 0, rejected
        assert bad in rejected.stdout and "schema_violation" in rejected.stdout, rejected.stdout
        table = ctl("rejected", "users")  # keys whole, to copy from
        assert table.returncode == 0 and f" {bad} " in table.stdout, table.stdout

        listed = ctl("list", "cacheInvalidation", "--prefix", "guest/", "-o", "json")
        assert listed.returncode == 0 and "guest/hello" in listed.stdout, listed

        # Controllers publish invalidations through their sidecar (the topic is writable).
        value = '{"instanceId":"controller2","key":{"mainId":"guest/new"}}'
        put = ctl("put", "cacheInvalidation", "guest/new", value)
        assert put.returncode == 0, put
        got = ctl("get", "cacheInvalidation", "guest/new", "-o", "raw")
        assert got.returncode == 0 and got.stdout == value, got

        # What an operator's dashboard and alerts read, there from the start.
        with urllib.request.urlopen(f"http://{env['CACHECAR_HTTP_ADDRESS']}/metrics",
                                    timeout=10) as r:
            text = r.read().decode()
        assert re.search(r'^cachecar_build_info\{version="\d+\.\d+\.\d+",revision="[^"]+"\} 1$',
                         text, re.M), "no build info"
        for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                     "process_start_time_seconds", "process_open_fds"):
            assert re.search(rf"^{name} [0-9.e+]+$", text, re.M), name
        for p in range(4):
            assert f'cachecar_partition_halted{{partition="{p}",topic="users"}} 0' in text
        assert 'cachecar_kafka_consumer_errors_total{reason="KAFKA_UNAVAILABLE"} 0' in text
        assert 'cachecar_store_write_failing{reason="DISK_FULL"} 0' in text
        assert ('cachecar_materializer_records_rejected_total{reason="schema_violation",'
                'topic="users"} 1') in text
        assert ('cachecar_materializer_records_rejected_total{reason="invalid_json",'
                'topic="users"} 0') in text

        # Orders written by Confluent's Avro serializer into the demo's registry: served as
        # JSON (Avro's JSON encoding: the union's branch named), the bytes on request.
        got = ctl("get", "orders", "o-1001", "-o", "json")
        assert got.returncode == 0, got
        order = json.loads(got.stdout)
        assert order["value"]["status"] == "PAID", got.stdout
        assert order["value"]["coupon"] == {"string": "WELCOME10"}, got.stdout
        raw = subprocess.run([CACHECARCTL_BIN, "--original", "-o", "raw", "get", "orders",
                              "o-1001"], env=env, capture_output=True, timeout=30)
        assert raw.returncode == 0 and raw.stdout[:5] == b"\x00" + order["schema_id"].to_bytes(
            4, "big"), raw
        new = ('{"id":"o-1004","customer":"ada","status":"PLACED","total_cents":1999,'
               '"items":[{"sku":"book-42","quantity":1}],"coupon":null}')
        put = ctl("put", "orders", "o-1004", new)
        assert put.returncode == 0, put
        got = ctl("get", "orders", "o-1004", "-o", "json")
        assert got.returncode == 0 and json.loads(got.stdout)["value"] == json.loads(new), got
        bad = ctl("put", "orders", "o-1005", '{"id":"o-1005","status":"LOST"}')
        assert bad.returncode == 5 and "/status" in bad.stdout + bad.stderr, bad
        status = ctl("status")
        assert re.search(r"^orders\s+%d\s+[1-9]" % order["schema_id"], status.stdout, re.M), \
            status.stdout

        refused = ctl("put", "users", "x", '{"id":"x"}')
        assert refused.returncode == 5 and "email" in refused.stderr + refused.stdout, refused
    finally:
        stop = subprocess.run(["scripts/demo.sh", "stop"], cwd=SOURCE_DIR, env=env,
                              capture_output=True, timeout=120)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        log.close()
    assert stop.returncode == 0, stop
