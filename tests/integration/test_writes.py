"""Put and Delete through the topic, JSON Schema at write and read, read-your-writes."""
import json
import re
import os
import shutil
import tempfile
import threading

import grpc
from confluent_kafka import Consumer, TopicPartition

from conftest import (SOURCE_DIR, cache_pb2_grpc, create_topic, deadline_wait, pb, produce,
                      unique)
from test_bad_input import call_error, rich_status


ITEM_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["id", "v"],
    "properties": {"id": {"type": "string", "format": "uuid"},
                   "v": {"type": "integer", "minimum": 0}},
    "additionalProperties": False,
}
UUID = "6f1c2a34-5b6d-4e7f-8a9b-0c1d2e3f4a5b"


def schema_dir(*files):
    """A folder with the given (name, schema) files, as a mounted ConfigMap would be."""
    d = tempfile.mkdtemp(prefix="schemas-")
    for name, schema in files:
        write_atomically(os.path.join(d, name), schema)
    return d


def write_atomically(path, schema):
    text = schema if isinstance(schema, str) else json.dumps(schema)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def read_topic(bootstrap, topic, partitions=1):
    """Every record of the topic, read by an independent consumer: (key, value, headers)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("check"),
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    try:
        ends = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)]
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        out, seen = [], [0] * partitions
        while any(seen[p] < ends[p] for p in range(partitions)):
            m = c.poll(10)
            assert m is not None, f"timed out reading {topic}"
            if m.error():
                continue
            out.append((m.key(), m.value(), dict(m.headers() or [])))
            seen[m.partition()] = m.offset() + 1
        return out
    finally:
        c.close()


def test_put_then_get_never_sees_a_stale_value(admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("items"), partitions=4)
    d = schema_dir(("item.json", ITEM_SCHEMA))
    c = cachecar_factory([{"name": t, "schema": os.path.join(d, "item.json"), "read_only": False}])
    c.start()
    c.wait_ready()
    writers, total = 64, 10000
    errors = []

    def writer(w):
        ch = grpc.insecure_channel(c.address)
        stub = cache_pb2_grpc.CacheServiceStub(ch)
        try:
            for i in range(w, total, writers):
                key = f"w{w}-k{i % 7}".encode()
                value = json.dumps({"id": UUID, "v": i}).encode()
                put = stub.Put(pb.PutRequest(topic=t, key=key, value=value), timeout=30)
                assert put.applied and put.store_revision > 0, put
                got = stub.Get(pb.GetRequest(topic=t, key=key), timeout=10)
                if not got.found or got.entry.value != value:
                    errors.append((key, value, got.entry.value))
                if got.entry.offset != put.offset or got.entry.partition != put.partition:
                    errors.append((key, "offset", put.partition, put.offset, got.entry.offset))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        finally:
            ch.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == [], errors[:5]
    assert c.metric("cachecar_rpc_requests_total", method="Put", code="OK") == total


def test_rejected_put_produces_nothing_and_lists_every_violation(admin, bootstrap,
                                                                 cachecar_factory):
    t = create_topic(admin, unique("users"), partitions=1)
    ro = create_topic(admin, unique("readonly"), partitions=1)
    d = tempfile.mkdtemp(prefix="schemas-")
    for f in ("user.json", "organization.json"):
        shutil.copy(os.path.join(SOURCE_DIR, "schemas", f), d)
    c = cachecar_factory([
        {"name": t, "schema": os.path.join(d, "user.json"), "read_only": False,
         "max_value_bytes": 2048},
        {"name": ro},
    ])
    c.start()
    c.wait_ready()

    bad = {"id": "not-a-uuid", "displayName": "", "groups": [{"id": UUID}], "extra": 1}
    e = call_error(c.stub.Put, pb.PutRequest(topic=t, key=b"u1", value=json.dumps(bad).encode()))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    info, violations = rich_status(e)
    assert info.reason == "SCHEMA_VIOLATION"
    assert set(violations) >= {"value", "value/id", "value/displayName", "value/groups/0"}, violations
    assert len(violations) >= 4

    e = call_error(c.stub.Put, pb.PutRequest(topic=t, key=b"u1", value=b"{nope"))
    assert rich_status(e)[0].reason == "INVALID_JSON"
    e = call_error(c.stub.Put, pb.PutRequest(topic=t, key=b"u1", value=b'"' + b"x" * 3000 + b'"'))
    assert rich_status(e)[0].reason == "VALUE_TOO_LARGE"
    e = call_error(c.stub.Put, pb.PutRequest(topic=ro, key=b"u1", value=b"{}"))
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED
    assert rich_status(e)[0].reason == "TOPIC_READ_ONLY"
    e = call_error(c.stub.Put, pb.PutRequest(topic="", key=b"", value=b"{}"))
    assert set(rich_status(e)[1]) == {"topic", "key"}
    e = call_error(c.stub.Delete, pb.DeleteRequest(topic=t, key=b"\xff"))
    assert "key" in rich_status(e)[1]

    # cachecarctl: exit 5 and the violations on stderr; nothing produced either.
    r = c.ctl("put", t, "u1", json.dumps(bad))
    assert r.returncode == 5, r
    assert b"value/id" in r.stderr

    good = {"id": UUID, "email": "ada@example.com", "displayName": "Ada"}
    r = c.ctl("-o", "json", "put", t, "u1", json.dumps(good))
    assert r.returncode == 0, r.stderr
    put = json.loads(r.stdout)
    assert put["applied"] is True
    got = c.stub.Get(pb.GetRequest(topic=t, key=b"u1", min_revision=put["store_revision"]), timeout=10)
    assert json.loads(got.entry.value) == good

    r = c.ctl("delete", t, "u1")
    assert r.returncode == 0, r.stderr
    assert not c.stub.Get(pb.GetRequest(topic=t, key=b"u1"), timeout=10).found

    # The topic, read independently, holds exactly the good record and the tombstone.
    records = read_topic(bootstrap, t)
    assert [(k, v) for k, v, _ in records] == [(b"u1", json.dumps(good).encode()), (b"u1", None)]
    assert read_topic(bootstrap, ro) == []


def test_min_revision_ahead_of_the_store_fails_distinctly(admin, cachecar_factory):
    t = create_topic(admin, unique("rev"), partitions=1)
    c = cachecar_factory([{"name": t}])
    c.start()
    c.wait_ready()
    try:
        c.stub.Get(pb.GetRequest(topic=t, key=b"k", min_revision=10**12), timeout=1)
        raise AssertionError("should fail")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.OUT_OF_RANGE
        info, _ = rich_status(e)
        assert info.reason == "REVISION_NOT_YET_APPLIED"
        assert "current_revision" in info.metadata


def test_invalid_record_in_the_backlog_under_each_policy(admin, bootstrap, cachecar_factory):
    d = schema_dir(("item.json", ITEM_SCHEMA))
    schema = os.path.join(d, "item.json")
    topics = {p: create_topic(admin, unique(p), partitions=1) for p in ("skip", "dead", "fail")}
    dlq = create_topic(admin, unique("dlq"), partitions=1)
    backlog = [(b"a", json.dumps({"id": UUID, "v": 1})),
               (b"a", json.dumps({"id": UUID, "v": -5, "secret": "s3cr3t"})),  # invalid
               (b"b", json.dumps({"id": UUID, "v": 2}))]
    for t in topics.values():
        produce(bootstrap, t, backlog)
    c = cachecar_factory([
        {"name": topics["skip"], "schema": schema, "on_invalid": "skip"},
        {"name": topics["dead"], "schema": schema, "on_invalid": "dead-letter",
         "dead_letter_topic": dlq},
        {"name": topics["fail"], "schema": schema, "on_invalid": "fail"},
    ])
    c.start()

    def topic_status(name):
        return next(x for x in c.status().topics if x.topic == name)

    deadline_wait(lambda: topic_status(topics["skip"]).ready and topic_status(topics["dead"]).ready,
                  what="skip and dead-letter topics ready")
    for p in ("skip", "dead"):
        got = c.stub.Get(pb.GetRequest(topic=topics[p], key=b"a"), timeout=5)
        assert json.loads(got.entry.value) == {"id": UUID, "v": 1}  # the previous value stays
        assert c.stub.Get(pb.GetRequest(topic=topics[p], key=b"b"), timeout=5).found

    # dead-letter: the record, unchanged, with error headers.
    records = read_topic(bootstrap, dlq)
    assert len(records) == 1
    key, value, headers = records[0]
    assert (key, value) == (b"a", backlog[1][1].encode())
    assert headers["cachecar.error.reason"] == b"schema_violation"
    assert b"/v" in headers["cachecar.error.detail"] and b"s3cr3t" not in headers["cachecar.error.detail"]
    assert headers["cachecar.source.topic"] == topics["dead"].encode()
    assert headers["cachecar.source.offset"] == b"1"

    # fail: not ready, and every way of asking says where and why.
    deadline_wait(lambda: topic_status(topics["fail"]).partitions
                  and topic_status(topics["fail"]).partitions[0].halted_reason, what="halt")
    st = topic_status(topics["fail"])
    assert not st.ready and not c.status().ready
    assert "offset 1" in st.partitions[0].halted_reason
    assert st.partitions[0].applied_offset == 1
    code, body = c.http("/readyz")
    assert code == 503 and "halted at offset 1" in body and "schema_violation" in body
    assert not c.stub.Get(pb.GetRequest(topic=topics["fail"], key=b"b", allow_cold_cache=True),
                          timeout=5).found

    r = c.ctl("-o", "json", "rejected", topics["skip"])
    assert r.returncode == 0, r.stderr
    rej = json.loads(r.stdout)  # an array, with RFC 3339 times as `get` prints them
    assert [(x["offset"], x["reason"], x["action"]) for x in rej] == [(1, "schema_violation", "skipped")]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rej[0]["reject_time"]), rej
    assert "s3cr3t" not in r.stdout.decode()
    rej = c.stub.ListRejectedRecords(pb.ListRejectedRecordsRequest(topic=topics["dead"]), timeout=5)
    assert [x.action for x in rej.records] == ["dead-lettered"]
    assert c.metric("cachecar_materializer_records_rejected_total", topic=topics["skip"],
                    reason="schema_violation") == 1
    assert c.metric("cachecar_partition_halted", topic=topics["fail"]) == 1


def test_schema_hot_reload_good_and_broken(admin, cachecar_factory):
    t = create_topic(admin, unique("reload"), partitions=1)
    d = schema_dir(("item.json", ITEM_SCHEMA))
    path = os.path.join(d, "item.json")
    c = cachecar_factory([{"name": t, "schema": path, "read_only": False}],
                         extra={"schemas": {"reload_interval_ms": 50}})
    c.start()
    c.wait_ready()
    big = json.dumps({"id": UUID, "v": 500}).encode()
    c.stub.Put(pb.PutRequest(topic=t, key=b"k", value=big), timeout=10)

    tighter = dict(ITEM_SCHEMA, properties={"id": {"type": "string", "format": "uuid"},
                                            "v": {"type": "integer", "maximum": 100}})
    write_atomically(path, tighter)

    def refused():
        try:
            c.stub.Put(pb.PutRequest(topic=t, key=b"k", value=big), timeout=10)
            return False
        except grpc.RpcError as e:
            return rich_status(e)[0].reason == "SCHEMA_VIOLATION"
    deadline_wait(refused, what="the tighter schema in force")
    assert c.metric("cachecar_schema_reloads_total", topic=t, result="ok") == 1

    write_atomically(path, '{"type": "object", "requried": ["id"]}')  # broken: refused
    deadline_wait(lambda: c.metric("cachecar_schema_reload_failing", topic=t) == 1,
                  what="reload refused")
    assert c.find_logs("new schema refused; the previous one stays in force")
    assert refused()  # the tighter schema still applies
    assert c.stub.Put(pb.PutRequest(topic=t, key=b"k", value=json.dumps({"id": UUID, "v": 5}).encode()),
                      timeout=10).applied


def test_unenforceable_schema_stops_the_start(admin, cachecar_factory):
    t = create_topic(admin, unique("badschema"), partitions=1)
    d = schema_dir(("typo.json", {"type": "object", "properties": {"a": {"type": "string",
                                                                          "maxLenght": 3}}}))
    c = cachecar_factory([{"name": t, "schema": os.path.join(d, "typo.json")}])
    c.start(wait_listening=False)
    assert c.proc.wait(timeout=30) != 0
    deadline_wait(lambda: "maxLenght" in open(c.log_path).read(), timeout=10, what="log")
    text = open(c.log_path).read()
    assert "typo.json" in text and "maxLenght" in text
