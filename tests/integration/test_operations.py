"""Operations against the real broker: an outage, consumer-group lag, tokens, WaitReady."""
import json
import os
import subprocess
import tempfile
import threading
import time

import grpc
import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import (CACHECARCTL_BIN, SOURCE_DIR, Cachecar, create_topic, deadline_wait,
                      end_offsets, last_values, pb, produce, unique, _workdir)

KAFKA_SH = os.path.join(SOURCE_DIR, "scripts/kafka.sh")
# How long the broker stays down. The scenario is a minute.
OUTAGE_SECONDS = float(os.environ.get("CACHECAR_OUTAGE_SECONDS", "60"))


@pytest.fixture
def own_broker():
    """A broker of this test's own, which it may stop and resume."""
    d = tempfile.mkdtemp(prefix="kafka-outage-", dir=_workdir())
    subprocess.run([KAFKA_SH, "start", d], check=True, capture_output=True)
    with open(os.path.join(d, "bootstrap")) as f:
        bootstrap = f.read().strip()
    yield d, bootstrap
    subprocess.run([KAFKA_SH, "stop", d], capture_output=True)


def put_error(c, topic, timeout):
    try:
        c.stub.Put(pb.PutRequest(topic=topic, key=b"p", value=b'{"v":1}'), timeout=timeout)
        return None
    except grpc.RpcError as e:
        return e


def test_broker_outage_keeps_reads_fails_puts_fast_and_recovers(own_broker, cachecar_factory):
    kdir, bootstrap = own_broker
    admin = AdminClient({"bootstrap.servers": bootstrap})
    t = create_topic(admin, unique("outage"), partitions=2)
    produce(bootstrap, t, [(f"k{i}".encode(), b'{"v":0}') for i in range(100)])
    c = Cachecar(bootstrap, [{"name": t, "read_only": False}], name="outage")
    c.start()
    try:
        c.wait_ready()
        subprocess.run([KAFKA_SH, "stop", kdir], check=True, capture_output=True)
        down_at = time.monotonic()
        # Reads are served throughout, and the sidecar stays ready (its data is complete).
        assert c.stub.Get(pb.GetRequest(topic=t, key=b"k1"), timeout=5).found
        # Once the outage is noticed, a Put is refused at once, not at its (long) deadline.
        deadline_wait(lambda: (lambda e: e is not None and
                               e.code() == grpc.StatusCode.UNAVAILABLE)(put_error(c, t, 5)),
                      timeout=60, what="Puts to fail with UNAVAILABLE")
        e = put_error(c, t, timeout=120)
        assert e is not None and e.code() == grpc.StatusCode.UNAVAILABLE, e
        assert "no Kafka broker is reachable" in e.details()
        assert c.metric("cachecar_kafka_reachable") == 0
        code, _ = c.http("/readyz")
        assert code == 200
        assert c.status().ready
        while time.monotonic() - down_at < OUTAGE_SECONDS:
            assert c.stub.Get(pb.GetRequest(topic=t, key=b"k99"), timeout=5).found
            assert c.proc.poll() is None
            time.sleep(1)  # the outage's length is the point: nothing to wait for
        subprocess.run([KAFKA_SH, "resume", kdir], check=True, capture_output=True)
        # Everything recovers by itself.
        deadline_wait(lambda: put_error(c, t, 10) is None, timeout=120,
                      what="Puts to succeed after the broker returned")
        assert c.metric("cachecar_kafka_reachable") == 1
        produce(bootstrap, t, [(b"after", b'{"v":2}')])
        deadline_wait(lambda: c.stub.Get(pb.GetRequest(topic=t, key=b"after"), timeout=5).found,
                      timeout=60, what="a record produced after the outage to be applied")
        assert c.list_all(t) == last_values(bootstrap, t, 2)
    finally:
        c.stop()


def test_applied_offsets_show_in_the_pods_consumer_group(admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("lag"), partitions=3)
    produce(bootstrap, t, [(f"k{i}".encode(), b"{}") for i in range(300)])
    group = unique("shop.web-7d9f")
    c = cachecar_factory([{"name": t}], extra={"kafka": {"group_id": group,
                                                         "commit_interval_ms": 200}})
    c.start()
    c.wait_ready()
    ends = end_offsets(bootstrap, t, 3)

    def committed():
        req = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for p in range(3)])
        res = admin.list_consumer_group_offsets([req])[group].result(10)
        return [tp.offset for tp in sorted(res.topic_partitions, key=lambda x: x.partition)]
    deadline_wait(lambda: committed() == ends, timeout=30, what="committed offsets = end")
    # Never joined: the group has no members (no rebalancing with other pods).
    desc = admin.describe_consumer_groups([group])[group].result(10)
    assert len(desc.members) == 0
    assert c.metric("cachecar_kafka_offset_commits_total", result="ok") >= 1


def test_token_is_required_on_every_call_but_not_for_health(admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("auth"))
    produce(bootstrap, t, [(b"k", b'{"v":1}')])
    token_file = os.path.join(tempfile.mkdtemp(dir=_workdir()), "token")
    with open(token_file, "w") as f:
        f.write("correct-horse-battery\n")
    c = cachecar_factory([{"name": t}], extra={"grpc": {"auth_token_file": token_file}})
    c.start()
    health = health_pb2_grpc.HealthStub(c.channel)
    deadline_wait(lambda: health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
                  .status == health_pb2.HealthCheckResponse.SERVING, timeout=60,
                  what="health SERVING without a token")
    for md in [None, [("authorization", "Bearer wrong")], [("authorization", "correct-horse-battery")]]:
        with pytest.raises(grpc.RpcError) as e:
            c.stub.Get(pb.GetRequest(topic=t, key=b"k"), timeout=5, metadata=md)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as e:
            list(c.stub.Watch(iter([pb.WatchRequest(create=pb.WatchCreateRequest(
                watch_id=1, topic=t, key=b"k"))]), timeout=5, metadata=md))
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    good = [("authorization", "Bearer correct-horse-battery")]
    r = c.stub.Get(pb.GetRequest(topic=t, key=b"k"), timeout=5, metadata=good)
    assert r.found and r.entry.value == b'{"v":1}'
    # The token never reaches the log.
    with open(c.log_path) as f:
        assert "correct-horse-battery" not in f.read()
    # cachecarctl reads it from a file.
    out = subprocess.run([CACHECARCTL_BIN, "-a", c.address, "--token-file", token_file,
                          "get", t, "k", "-o", "raw"], capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b'{"v":1}'
    out = subprocess.run([CACHECARCTL_BIN, "-a", c.address, "get", t, "k"],
                         capture_output=True, timeout=30)
    assert out.returncode == 1 and b"token" in out.stderr
    # The Python and TypeScript clients take the token from $CACHECAR_TOKEN_FILE.
    env = dict(os.environ, CACHECAR_ADDRESS=c.address, CACHECAR_TOKEN_FILE=token_file)
    py = ("import sys; from cachecar import Client, CachecarError\n"
          "print(Client().get(sys.argv[1], 'k').entry.value.decode())\n"
          "try:\n    Client(token='bad').get(sys.argv[1], 'k')\n"
          "except CachecarError as e:\n    print(e.reason)\n")
    ts = ("const { Client } = require(process.argv[1]);"
          "(async () => { console.log((await new Client().get(process.argv[2], 'k')).entry.value.toString());"
          " try { await new Client({ token: 'bad' }).get(process.argv[2], 'k'); }"
          " catch (e) { console.log(e.reason); } process.exit(0); })();")
    for cmd in ([os.path.join(SOURCE_DIR, ".venv/bin/python"), "-c", py, t],
                ["node", "-e", ts, os.path.join(SOURCE_DIR, "client/typescript/dist/src/index.js"), t]):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == ['{"v":1}', "UNAUTHENTICATED"], out.stdout
    # The probe k8s/ runs needs no token: grpc.health.v1, for the sidecar and one topic.
    for service in ([], [f"topic/{t}"]):
        out = subprocess.run([CACHECARCTL_BIN, "-a", c.address, "health", *service],
                             capture_output=True, timeout=30)
        assert out.returncode == 0 and out.stdout == b"SERVING\n", out
    out = subprocess.run([CACHECARCTL_BIN, "-a", c.address, "health", "topic/nope"],
                         capture_output=True, timeout=30)
    assert out.returncode == 5, out  # the health service knows no such topic


def test_wait_ready_returns_when_caught_up(admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("waitready"), partitions=4)
    produce(bootstrap, t, [(f"k{i % 20000}".encode(), json.dumps({"i": i}).encode())
                           for i in range(200_000)])
    c = cachecar_factory([{"name": t}])
    c.start()
    # Short enough to end during the catch-up, long enough that the answer (sent 50 ms
    # before the deadline) is not overtaken by it on a loaded machine.
    first = c.stub.WaitReady(pb.WaitReadyRequest(), timeout=0.5)
    if not first.ready:  # still catching up: told why instead of a bare deadline
        assert first.not_ready_reason
    r = c.stub.WaitReady(pb.WaitReadyRequest(), timeout=180)
    assert r.ready and not r.not_ready_reason
    assert c.status().ready
    out = subprocess.run([CACHECARCTL_BIN, "-a", c.address, "status", "--wait-ms", "1000",
                          "-o", "json"], capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ready"] is True


def test_secret_properties_from_files_are_used_and_never_logged(admin, bootstrap,
                                                                cachecar_factory):
    t = create_topic(admin, unique("secret"))
    secret_dir = tempfile.mkdtemp(dir=_workdir())
    with open(os.path.join(secret_dir, "password"), "w") as f:
        f.write("s3cr3t-pa55\n")
    # A PLAINTEXT broker ignores SASL credentials; the point is that the value is read
    # from the file, handed to librdkafka, and printed nowhere, even at debug level.
    c = cachecar_factory([{"name": t}], extra={
        "kafka": {"properties": {"sasl.username": "app", "debug": "conf"},
                  "properties_from_files": {"sasl.password": os.path.join(secret_dir, "password")}},
        "log": {"level": "debug"}})
    c.start()
    c.wait_ready()
    c.stop()
    with open(c.log_path) as f:
        log = f.read()
    assert "s3cr3t-pa55" not in log
