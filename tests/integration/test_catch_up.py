"""Catch-up, readiness and reads against a real broker (issue: cachecar core)."""
import json
import random
import subprocess

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from conftest import (CACHECARCTL_BIN, create_topic, deadline_wait, last_values, pb, produce,
                      unique)


def users_records(n, seed):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        key = f"user-{rng.randrange(n // 3)}".encode()
        if rng.random() < 0.1:
            out.append((key, None))  # tombstone
        else:
            out.append((key, json.dumps({"id": i, "name": f"n{i}"}).encode()))
    return out


def health(channel, service=""):
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
    except grpc.RpcError as e:
        return e.code()


def test_not_ready_until_every_topic_exists_and_is_caught_up(admin, bootstrap, cachecar_factory):
    users = create_topic(admin, unique("users"), partitions=4)
    produce(bootstrap, users, users_records(3000, seed=1))
    late = unique("late")  # configured, but created only later
    c = cachecar_factory([{"name": users}, {"name": late, "value_format": "bytes"}]).start()

    c.wait_log("topic caught up")
    # One topic caught up, the other missing: every readiness signal says no.
    assert not c.status().ready
    assert c.http("/readyz")[0] == 503
    assert c.http("/livez")[0] == 200
    assert health(c.channel) == health_pb2.HealthCheckResponse.NOT_SERVING
    assert health(c.channel, f"topic/{users}") == health_pb2.HealthCheckResponse.SERVING
    assert health(c.channel, f"topic/{late}") == health_pb2.HealthCheckResponse.NOT_SERVING
    try:
        c.stub.Get(pb.GetRequest(topic=late, key=b"k"), timeout=5)
        raise AssertionError("read of a topic that is not ready must fail")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.UNAVAILABLE
    r = c.stub.Get(pb.GetRequest(topic=late, key=b"k", allow_cold_cache=True), timeout=5)
    assert not r.found
    assert c.ctl("status").returncode == 4

    create_topic(admin, late, partitions=2)
    produce(bootstrap, late, [(b"k", b"v")])
    c.wait_ready()
    assert c.http("/readyz")[0] == 200
    assert health(c.channel) == health_pb2.HealthCheckResponse.SERVING
    assert c.stub.Get(pb.GetRequest(topic=late, key=b"k"), timeout=5).found
    assert c.ctl("status").returncode == 0


def test_every_key_equals_the_last_record_across_topics_and_partitions(admin, bootstrap, cachecar_factory):
    users = create_topic(admin, unique("users"), partitions=8)
    sessions = create_topic(admin, unique("sessions"), partitions=3, config={"cleanup.policy": "compact"})
    produce(bootstrap, users, users_records(20000, seed=2))
    produce(bootstrap, sessions, users_records(5000, seed=3))
    # kcat is a second, independent producer: a few records and a tombstone through it.
    subprocess.run(["kcat", "-P", "-b", bootstrap, "-t", users, "-K", ":"],
                   input=b'kcat-1:{"via":"kcat"}\nkcat-2:{"via":"kcat"}\n', check=True, timeout=60)
    subprocess.run(["kcat", "-P", "-b", bootstrap, "-t", users, "-K", ":", "-Z"],
                   input=b"kcat-2:", check=True, timeout=60)

    c = cachecar_factory([{"name": users}, {"name": sessions}]).start()
    c.wait_ready()
    for topic, parts in ((users, 8), (sessions, 3)):
        expected = last_values(bootstrap, topic, parts)
        got = c.list_all(topic)
        assert got == expected, f"{topic}: {len(got)} keys served, {len(expected)} expected"
    kcat1 = c.stub.Get(pb.GetRequest(topic=users, key=b"kcat-1"), timeout=5)
    assert kcat1.found and json.loads(kcat1.entry.value) == {"via": "kcat"}
    assert not c.stub.Get(pb.GetRequest(topic=users, key=b"kcat-2"), timeout=5).found

    # Status agrees with the broker's end offsets, and key counts with the independent read.
    st = c.status()
    assert st.ready and st.store_revision > 0 and len(st.store_id) == 32
    by_topic = {t.topic: t for t in st.topics}
    assert by_topic[users].key_count == len(last_values(bootstrap, users, 8))
    assert all(p.ready and p.lag == 0 for p in by_topic[users].partitions)

    # Live tail: a new record becomes readable without a restart.
    produce(bootstrap, users, [(b"live", b'{"fresh":true}')])
    deadline_wait(lambda: c.stub.Get(pb.GetRequest(topic=users, key=b"live"), timeout=5).found,
                  timeout=30, what="live record")


def test_batch_get_list_and_response_header(admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("kv"), partitions=2)
    produce(bootstrap, t, [(f"a:{i:03d}".encode(), json.dumps(i).encode()) for i in range(250)]
            + [(b"b:1", b"1")])
    c = cachecar_factory([{"name": t}]).start()
    c.wait_ready()
    r, call = c.stub.BatchGet.with_call(
        pb.BatchGetRequest(topic=t, keys=[b"a:007", b"missing", b"b:1"]), timeout=5)
    assert [x.found for x in r.results] == [True, False, True]
    assert r.results[0].entry.value == b"7"
    header = dict(call.initial_metadata())["cachecar-store-revision"]
    assert int(header) >= r.store_revision > 0

    page = c.stub.List(pb.ListRequest(topic=t, prefix=b"a:", page_size=100), timeout=5)
    assert len(page.entries) == 100 and page.next_page_token
    assert [e.key for e in page.entries] == sorted(e.key for e in page.entries)
    assert set(c.list_all(t, b"a:")) == {f"a:{i:03d}".encode() for i in range(250)}

    # cachecarctl, our own client, agrees.
    out = c.ctl("get", t, "a:042", "-o", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["value"] == 42
    assert c.ctl("get", t, "nope").returncode == 3
    out = c.ctl("list", t, "--prefix", "a:", "-o", "json")  # one document: an array
    assert out.returncode == 0
    listed = json.loads(out.stdout)
    assert [e["key"] for e in listed] == [f"a:{i:03d}" for i in range(250)]
    out = c.ctl("list", t, "--prefix", "a:", "-o", "jsonl")  # one object per line
    assert [json.loads(line)["key"] for line in out.stdout.splitlines()] == \
        [e["key"] for e in listed]
    out = c.ctl("list", t, "--prefix", "a:00")
    assert out.returncode == 0 and b"a:009" in out.stdout and b"a:010" not in out.stdout
    # Errors: with -o json a script reads why on stdout as well.
    out = c.ctl("get", "nope", "k", "-o", "json")
    assert out.returncode == 5
    err = json.loads(out.stdout)["error"]
    assert err["code"] == "NOT_FOUND" and err["reason"] == "TOPIC_NOT_FOUND", err
    out = subprocess.run([CACHECARCTL_BIN, "-a", "127.0.0.1:1", "-o", "jsonl", "list", t],
                         capture_output=True, timeout=30)  # nothing listens there
    assert out.returncode == 1 and json.loads(out.stdout)["error"]["code"] == "UNAVAILABLE", out


def test_list_table_prints_whole_keys(admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("wide"))
    keys = ["9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "k" * 100, "short"]
    produce(bootstrap, t, [(k.encode(), b"{}") for k in keys])
    c = cachecar_factory([{"name": t}]).start()
    c.wait_ready(timeout=60)
    out = c.ctl("list", t)
    assert out.returncode == 0, out.stderr
    rows = out.stdout.decode().splitlines()[1:]
    assert sorted(r.split()[0] for r in rows) == sorted(keys), rows


def test_reflection_lists_the_cache_service(admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("refl"))
    c = cachecar_factory([{"name": t}]).start()
    stub = reflection_pb2_grpc.ServerReflectionStub(c.channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                          timeout=5)
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert "cachecar.v1.CacheService" in names
    assert "grpc.health.v1.Health" in names
