"""Transforms (jq) and merge-patch against the real broker, records written by an
independent producer (confluent-kafka), the expected state computed here from the topic."""
import json
import os
import random
import subprocess

import grpc

from conftest import (CACHECAR_BIN, CACHECARCTL_BIN, create_topic, deadline_wait, end_offsets,
                      pb, produce, producer, unique)
from test_bad_input import call_error, rich_status


def get_json(c, topic, key):
    r = c.stub.Get(pb.GetRequest(topic=topic, key=key), timeout=5)
    return json.loads(r.entry.value) if r.found else None


def merge_patch(target, patch):
    """RFC 7396, written from the RFC's pseudo-code (independent of the sidecar's)."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    target = dict(target)
    for name, value in patch.items():
        if value is None:
            target.pop(name, None)
        else:
            target[name] = merge_patch(target.get(name), value)
    return target


def worker_pids():
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"__cachecar-transform-worker" in f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


def test_a_transform_projects_renames_derives_and_drops(admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("tx"))
    transform = """
      if .deleted then null
      else select(.active != false)
        | {id, email: (.email | ascii_downcase), name: .full_name,
           source: $headers.src, offset: $offset, key: $key}
      end"""
    p = producer(bootstrap)
    p.produce(t, key=b"u1", value=json.dumps({"id": 1, "email": "Ada@X.org", "full_name": "Ada",
                                              "password": "secret"}), headers=[("src", b"crm")])
    p.produce(t, key=b"u2", value=json.dumps({"id": 2, "email": "b@x.org", "active": False}))
    p.produce(t, key=b"u3", value=json.dumps({"id": 3, "email": "c@x.org"}))
    p.produce(t, key=b"u3", value=json.dumps({"deleted": True}))  # null: delete
    p.produce(t, key=b"u4", value=json.dumps({"id": 4, "email": "d@x.org"}))
    p.produce(t, key=b"u4", value=None)  # a tombstone deletes without the filter
    assert p.flush(30) == 0
    c = cachecar_factory([{"name": t, "transform": transform}]).start()
    c.wait_ready()
    assert get_json(c, t, b"u1") == {"id": 1, "email": "ada@x.org", "name": "Ada",
                                     "source": "crm", "offset": 0, "key": "u1"}
    assert get_json(c, t, b"u2") is None  # dropped by select
    assert get_json(c, t, b"u3") is None
    assert get_json(c, t, b"u4") is None
    assert c.metric("cachecar_transform_skipped_records_total", topic=t) == 1

    # Live records go through the same filter; a Put too (it goes through the topic).
    produce(bootstrap, t, [(b"u5", json.dumps({"id": 5, "email": "E@X.ORG", "x": 1}))])
    deadline_wait(lambda: get_json(c, t, b"u5"), what="live record transformed")
    assert get_json(c, t, b"u5")["email"] == "e@x.org"
    assert "x" not in get_json(c, t, b"u5")


def test_a_transform_that_does_not_compile_stops_the_start_naming_its_place(
        admin, cachecar_factory):
    t = create_topic(admin, unique("txbad"))
    c = cachecar_factory([{"name": t}, {"name": t + "-b", "transform": "{a: }"}])
    r = subprocess.run([CACHECAR_BIN, "--config", c.config_path], capture_output=True,
                       timeout=60, env=dict(os.environ, KAFKA_BOOTSTRAP="127.0.0.1:1"))
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "topics[1].transform" in err, err
    assert "cachecar.yaml:1:" in err, err
    assert "line 1, column" in err, err
    # --check-config compiles it too, without Kafka.
    r = subprocess.run([CACHECAR_BIN, "--config", c.config_path, "--check-config"],
                       capture_output=True, timeout=60, env=dict(os.environ, KAFKA_BOOTSTRAP="x:1"))
    assert r.returncode == 2, r
    assert "topics[1].transform" in r.stderr.decode()


def test_a_hostile_record_costs_only_itself_and_the_partition_goes_on(
        admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("txhost"))
    transform = ("if .loop then last(repeat(.)) elif .deep then def f: [f]; f "
                 "elif .big then [range(1e9)] | length else . end")
    produce(bootstrap, t, [(b"a", b'{"n":1}'), (b"loop", b'{"loop":true}'),
                           (b"deep", b'{"deep":true}'), (b"b", b'{"n":2}')])
    before = set(worker_pids())
    c = cachecar_factory([{"name": t, "transform": transform}],
                         extra={"transforms": {"record_budget_ms": 300,
                                               "max_memory_bytes": 256 << 20}}).start()
    c.wait_ready(timeout=60)
    assert get_json(c, t, b"a") == {"n": 1}
    assert get_json(c, t, b"b") == {"n": 2}
    assert get_json(c, t, b"loop") is None and get_json(c, t, b"deep") is None
    assert c.metric("cachecar_materializer_records_rejected_total", topic=t,
                    reason="transform_budget_exceeded") == 1
    assert c.metric("cachecar_materializer_records_rejected_total", topic=t,
                    reason="transform_crashed") == 1
    rej = c.stub.ListRejectedRecords(pb.ListRejectedRecordsRequest(topic=t), timeout=5)
    reasons = sorted(r.reason for r in rej.records)
    assert reasons == ["transform_budget_exceeded", "transform_crashed"], rej
    assert c.metric("cachecar_transform_worker_restarts_total", reason="budget_exceeded") == 1

    # Live, still going; and the worker dies with the sidecar.
    produce(bootstrap, t, [(b"c", b'{"n":3}')])
    deadline_wait(lambda: get_json(c, t, b"c"), what="live record after hostile ones")
    assert set(worker_pids()) - before
    c.kill9()
    deadline_wait(lambda: not (set(worker_pids()) - before), timeout=30,
                  what="the worker gone with its sidecar")


def test_merge_patch_builds_documents_from_partial_updates(admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("merge"))
    updates = [
        (b"u1", {"name": "Ada", "address": {"city": "London", "zip": "N1"}, "tags": ["a"]}),
        (b"u1", {"address": {"zip": None, "street": "Baker St"}}),  # null removes a member
        (b"u1", {"tags": ["b", "c"]}),  # arrays are replaced
        (b"u2", {"name": "Bob"}),
        (b"u2", None),  # a tombstone still deletes
        (b"u3", {"x": 1}),
        (b"u3", "scalar"),  # a non-object patch replaces the value
    ]
    produce(bootstrap, t, [(k, None if v is None else json.dumps(v)) for k, v in updates])
    c = cachecar_factory([{"name": t, "apply": "merge-patch"}]).start()
    c.wait_ready()
    expected = {}
    for k, v in updates:
        if v is None:
            expected.pop(k, None)
        else:
            expected[k] = merge_patch(expected.get(k), v)
    assert get_json(c, t, b"u1") == expected[b"u1"]
    assert get_json(c, t, b"u2") is None
    assert get_json(c, t, b"u3") == "scalar"
    # Live, onto what the store holds (another batch).
    produce(bootstrap, t, [(b"u1", json.dumps({"name": "Ada L."}))])
    deadline_wait(lambda: get_json(c, t, b"u1")["name"] == "Ada L.", what="live merge")
    assert get_json(c, t, b"u1")["address"] == {"city": "London", "street": "Baker St"}


def test_kill9_during_transformed_merges_leaves_exactly_the_topics_state(
        admin, bootstrap, cachecar_factory):
    partitions = 2
    t = create_topic(admin, unique("mergekill"), partitions=partitions)
    rnd = random.Random(11)
    records = []
    for i in range(30000):
        key = f"k{rnd.randrange(300)}".encode()
        if rnd.random() < 0.02:
            records.append((key, None))
            continue
        patch = {f"f{rnd.randrange(6)}": rnd.choice([rnd.randrange(100), None, {"n": i}]),
                 "seq": i}
        records.append((key, json.dumps(patch).encode()))
    produce(bootstrap, t, records)
    transform = '. + {last: $offset}'
    c = cachecar_factory([{"name": t, "apply": "merge-patch", "transform": transform}],
                         extra={"materializer": {"batch_max_records": 700}})

    c.kill9_during_catch_up(len(records))
    c.start()
    c.wait_ready(timeout=120)

    # The expected state, folded here from the topic as an independent consumer reads it.
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    cons = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("fold"),
                     "enable.auto.commit": False})
    cons.assign([TopicPartition(t, p, OFFSET_BEGINNING) for p in range(partitions)])
    expected, seen = {}, 0
    while seen < len(records):
        m = cons.poll(5)
        assert m is not None, "independent consumer stalled"
        assert not m.error(), m.error()
        seen += 1
        if m.value() is None:
            expected.pop(m.key(), None)
            continue
        patch = dict(json.loads(m.value()), last=m.offset())
        expected[m.key()] = merge_patch(expected.get(m.key()), patch)
    cons.close()
    got = {k: json.loads(v) for k, v in c.list_all(t).items()}
    assert got == expected, f"{len(got)} keys served, {len(expected)} expected"


def test_a_changed_transform_rebuilds_the_topic_at_restart_and_an_unchanged_one_does_not(
        admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("txchange"))
    produce(bootstrap, t, [(b"u1", b'{"a":1,"b":2}'), (b"u2", b'{"a":3,"b":4}')])
    plain = cachecar_factory([{"name": t}]).start()
    plain.wait_ready()
    assert get_json(plain, t, b"u1") == {"a": 1, "b": 2}
    assert plain.stop() == 0

    # Values stored as they came, now wanted projected: all of them are made again.
    projected = cachecar_factory([{"name": t, "transform": "{a}"}],
                                 store_dir=plain.store_dir).start()
    projected.wait_ready()
    assert get_json(projected, t, b"u1") == {"a": 1}
    assert get_json(projected, t, b"u2") == {"a": 3}
    assert projected.metric("cachecar_materializer_topic_rebuilds_total", topic=t,
                            reason="definition_changed") == 1
    assert projected.stop() == 0

    same = cachecar_factory([{"name": t, "transform": "{a}"}], store_dir=plain.store_dir).start()
    same.wait_ready()
    assert same.metric("cachecar_materializer_topic_rebuilds_total", topic=t,
                       reason="definition_changed") == 0
    assert same.find_logs("resuming partition from stored offset")
    assert get_json(same, t, b"u2") == {"a": 3}
    assert same.stop() == 0

    merged = cachecar_factory([{"name": t, "transform": "{a}", "apply": "merge-patch"}],
                              store_dir=plain.store_dir).start()
    merged.wait_ready()
    assert merged.metric("cachecar_materializer_topic_rebuilds_total", topic=t,
                         reason="definition_changed") == 1


ENTRY_SCHEMA = {"type": "object", "required": ["id", "email"],
                "properties": {"id": {"type": "integer"}, "email": {"type": "string"}}}


def test_the_entry_schema_refuses_records_and_puts_whose_result_breaks_it(
        admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("entry"))
    tx = create_topic(admin, unique("entrytx"))
    produce(bootstrap, t, [
        (b"u1", b'{"id":1,"email":"a@x"}'),
        (b"u1", b'{"email":null}'),       # the merged entry has no email: refused
        (b"u2", b'{"name":"no id"}'),     # a partial update onto nothing: refused
        (b"u3", b'{"id":3,"email":"c@x"}'),
    ])
    c = cachecar_factory([
        {"name": t, "apply": "merge-patch", "entry_schema": "entry.json", "read_only": False},
        {"name": tx, "transform": "{id: (.id | tonumber), email}", "read_only": False},
    ])
    with open(os.path.join(c.dir, "entry.json"), "w") as f:
        json.dump(ENTRY_SCHEMA, f)
    c.start()
    c.wait_ready()
    assert get_json(c, t, b"u1") == {"id": 1, "email": "a@x"}
    assert get_json(c, t, b"u2") is None
    assert get_json(c, t, b"u3") == {"id": 3, "email": "c@x"}
    assert c.metric("cachecar_materializer_records_rejected_total", topic=t,
                    reason="entry_schema_violation") == 2
    rej = c.stub.ListRejectedRecords(pb.ListRejectedRecordsRequest(topic=t), timeout=5)
    assert {r.reason for r in rej.records} == {"entry_schema_violation"}
    assert any("email" in r.detail for r in rej.records), rej

    # A Put that would break it is refused with the violations; nothing is produced.
    end = end_offsets(bootstrap, t, 1)
    e = call_error(c.stub.Put, pb.PutRequest(topic=t, key=b"u1", value=b'{"email":null}'))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    info, fields = rich_status(e)
    assert info.reason == "ENTRY_SCHEMA_VIOLATION", info
    assert "entry" in fields and "email" in fields["entry"], fields
    assert end_offsets(bootstrap, t, 1) == end
    # One that keeps it valid is merged and readable when the Put returns.
    c.stub.Put(pb.PutRequest(topic=t, key=b"u1", value=b'{"email":"b@x"}'), timeout=30)
    assert get_json(c, t, b"u1") == {"id": 1, "email": "b@x"}

    # A Put its topic's transform fails on is refused the same way.
    e = call_error(c.stub.Put, pb.PutRequest(topic=tx, key=b"k", value=b'{"id":"seven"}'))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rich_status(e)[0].reason == "TRANSFORM_FAILED"
    c.stub.Put(pb.PutRequest(topic=tx, key=b"k", value=b'{"id":"7","email":"k@x","x":1}'),
               timeout=30)
    assert get_json(c, tx, b"k") == {"id": 7, "email": "k@x"}


def test_cachecarctl_transform_shows_offline_what_a_record_becomes(tmp_path):
    with open(tmp_path / "entry.json", "w") as f:
        json.dump(ENTRY_SCHEMA, f)
    cfg = tmp_path / "cachecar.yaml"
    cfg.write_text(json.dumps({
        "kafka": {"bootstrap_servers": "${KAFKA_BOOTSTRAP}"},
        "topics": [
            {"name": "users", "entry_schema": "entry.json",
             "transform": "select(.active) | {id, email: (.email | ascii_downcase), key: $key}"},
            {"name": "profiles", "apply": "merge-patch", "entry_schema": "entry.json"},
        ]}))

    def ctl(*args):
        r = subprocess.run([CACHECARCTL_BIN, "-o", "json", "transform", "-c", str(cfg), *args],
                           capture_output=True, timeout=60)
        return r.returncode, json.loads(r.stdout) if r.stdout else r.stderr.decode()

    rc, out = ctl("users", "--key", "u1", '{"id":1,"email":"A@X","active":true,"pw":"s"}')
    assert (rc, out["result"], out["value"]) == (0, "store", {"id": 1, "email": "a@x", "key": "u1"})
    rc, out = ctl("users", '{"id":1,"email":"a","active":false}')
    assert (rc, out["result"]) == (0, "skip")
    rc, out = ctl("users", '{"id":"x","email":"a","active":true}')
    assert (rc, out["reason"]) == (5, "ENTRY_SCHEMA_VIOLATION")
    rc, out = ctl("profiles", "--current", '{"id":1,"email":"e"}', '{"name":"N"}')
    assert (rc, out["value"]) == (0, {"id": 1, "email": "e", "name": "N"})
    rc, out = ctl("profiles", "--current", '{"id":1,"email":"e"}', '{"email":null}')
    assert (rc, out["reason"]) == (5, "ENTRY_SCHEMA_VIOLATION")
    rc, out = ctl("profiles", "--current", '{"id":1}', "null")
    assert (rc, out["result"]) == (0, "delete")
