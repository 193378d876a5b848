"""Issue 15 end to end: what a hostile or careless schema or document can do, through a real
Put (grpcio with its default limits) and through records consumed from a real broker."""
import json
import os
import subprocess

import grpc

from conftest import (CACHECAR_BIN, create_topic, deadline_wait, pb, produce, unique)
from test_bad_input import call_error, rich_status
from test_writes import schema_dir

PASSWORD_RULE = "(?=.*[A-Z])(?=.*[0-9]).{8,}"


def test_long_quoted_value_still_says_schema_violation(admin, cachecar_factory):
    """A 5,000-character value that breaks an enum: the refusal fits grpcio's default
    metadata limit and says SCHEMA_VIOLATION (it was RESOURCE_EXHAUSTED)."""
    t = create_topic(admin, unique("enum"))
    d = schema_dir(("s.json", {"properties": {"color": {"enum": ["red", "green"]},
                                              "size": {"maxLength": 3}}}))
    c = cachecar_factory([{"name": t, "schema": os.path.join(d, "s.json"), "read_only": False}])
    c.start()
    c.wait_ready()
    big = "x" * 5000
    e = call_error(c.stub.Put, pb.PutRequest(topic=t, key=b"k",
                                             value=json.dumps({"color": big, "size": big}).encode()))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
    info, violations = rich_status(e)
    assert info.reason == "SCHEMA_VIOLATION"
    assert set(violations) == {"value/color", "value/size"}, violations
    # Each violation once in cachecarctl's output.
    r = c.ctl("put", t, "k", json.dumps({"color": big}))
    assert r.returncode == 5, r
    assert r.stderr.count(b"value/color") == 1, r.stderr


def test_json_means_the_same_with_and_without_a_schema(admin, bootstrap, cachecar_factory):
    plain = create_topic(admin, unique("plain"))
    schemad = create_topic(admin, unique("anyschema"))
    d = schema_dir(("any.json", {}))
    c = cachecar_factory([{"name": plain, "read_only": False},
                          {"name": schemad, "schema": os.path.join(d, "any.json"),
                           "read_only": False}])
    deep = "[" * 128 + "]" * 128
    for value in (b'{"a":1,"a":2}', b"\xef\xbb\xbf{}", deep.encode()):
        produce(bootstrap, plain, [(b"bad", value)])
        produce(bootstrap, schemad, [(b"bad", value)])
    produce(bootstrap, plain, [(b"good", b'{"n":18446744073709551617}')])
    produce(bootstrap, schemad, [(b"good", b'{"n":18446744073709551617}')])
    c.start()
    c.wait_ready()
    for t in (plain, schemad):
        for value in (b'{"a":1,"a":2}', b"\xef\xbb\xbf{}", deep.encode()):
            e = call_error(c.stub.Put, pb.PutRequest(topic=t, key=b"k", value=value))
            assert rich_status(e)[0].reason == "INVALID_JSON", (t, value[:20])
        assert not c.stub.Get(pb.GetRequest(topic=t, key=b"bad"), timeout=5).found
        got = c.stub.Get(pb.GetRequest(topic=t, key=b"good"), timeout=5)
        assert got.entry.value == b'{"n":18446744073709551617}'  # served as written
        rej = c.stub.ListRejectedRecords(pb.ListRejectedRecordsRequest(topic=t), timeout=5)
        assert [x.reason for x in rej.records] == ["invalid_json"] * 3, (t, rej)


def test_backtracking_pattern_is_refused_unless_the_topic_opts_in(admin, bootstrap,
                                                                   cachecar_factory, tmp_path):
    t = create_topic(admin, unique("passwords"))
    d = schema_dir(("p.json", {"properties": {"password": {"type": "string",
                                                           "pattern": PASSWORD_RULE}}}))
    schema = os.path.join(d, "p.json")

    # Refused at load, naming the pattern: --check-config and a start both say so.
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"kafka": {"bootstrap_servers": bootstrap},
                               "topics": [{"name": t, "schema": schema}]}))
    r = subprocess.run([CACHECAR_BIN, "--config", str(cfg), "--check-config"],
                       capture_output=True, timeout=60)
    assert r.returncode != 0
    assert PASSWORD_RULE.encode() in r.stderr and b"backtracking" in r.stderr, r.stderr

    # Opted in: decided within the budget, and over it a distinct outcome on both paths,
    # while the partition goes on past the undecided record.
    long_password = "a" * 10000
    produce(bootstrap, t, [(b"u1", json.dumps({"password": long_password})),
                           (b"u2", json.dumps({"password": "Secret123"}))])
    c = cachecar_factory([{"name": t, "schema": schema, "read_only": False,
                           "schema_patterns": "backtracking"}])
    c.start()
    c.wait_ready()
    assert c.stub.Get(pb.GetRequest(topic=t, key=b"u2"), timeout=5).found
    assert not c.stub.Get(pb.GetRequest(topic=t, key=b"u1"), timeout=5).found
    rej = c.stub.ListRejectedRecords(pb.ListRejectedRecordsRequest(topic=t), timeout=5)
    assert [(x.offset, x.reason) for x in rej.records] == [(0, "schema_budget_exceeded")]
    assert long_password not in rej.records[0].detail
    assert c.metric("cachecar_materializer_records_rejected_total", topic=t,
                    reason="schema_budget_exceeded") == 1

    e = call_error(c.stub.Put, pb.PutRequest(
        topic=t, key=b"u3", value=json.dumps({"password": long_password}).encode()))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    info, violations = rich_status(e)
    assert info.reason == "SCHEMA_BUDGET_EXCEEDED", info
    ok = c.stub.Put(pb.PutRequest(topic=t, key=b"u3",
                                  value=json.dumps({"password": "Passw0rdX"}).encode()), timeout=10)
    assert ok.applied
    e = call_error(c.stub.Put, pb.PutRequest(
        topic=t, key=b"u4", value=json.dumps({"password": "password"}).encode()))
    assert rich_status(e)[0].reason == "SCHEMA_VIOLATION"


def test_unboundable_and_escaping_schemas_stop_the_start(admin, bootstrap, tmp_path):
    t = create_topic(admin, unique("hostile"))
    defs = {f"d{i}": {"allOf": [{"$ref": f"#/definitions/d{i + 1}"}] * 2} for i in range(30)}
    defs["d30"] = {"type": "string"}
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text('{"type":"string"}')
    d = schema_dir(("chain.json", {"definitions": defs, "$ref": "#/definitions/d0"}),
                   ("escape.json", {"$ref": "link.json"}))
    os.symlink(outside / "secret.json", os.path.join(d, "link.json"))
    for name, expect in (("chain.json", b"cannot be bounded"), ("escape.json", b"outside")):
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(json.dumps({"kafka": {"bootstrap_servers": bootstrap},
                                   "topics": [{"name": t, "schema": os.path.join(d, name)}]}))
        r = subprocess.run([CACHECAR_BIN, "--config", str(cfg), "--check-config"],
                           capture_output=True, timeout=60)
        assert r.returncode != 0, name
        assert expect in r.stderr and name.encode() in r.stderr, r.stderr


def test_subfolder_ref_change_is_reloaded(admin, cachecar_factory):
    t = create_topic(admin, unique("reload"))
    d = schema_dir(("main.json", {"properties": {"code": {"$ref": "types/code.json"}}}))
    os.makedirs(os.path.join(d, "types"))
    with open(os.path.join(d, "types", "code.json"), "w") as f:
        json.dump({"type": "string", "maxLength": 10}, f)
    c = cachecar_factory([{"name": t, "schema": os.path.join(d, "main.json"), "read_only": False}],
                         extra={"schemas": {"reload_interval_ms": 50}})
    c.start()
    c.wait_ready()
    c.stub.Put(pb.PutRequest(topic=t, key=b"a", value=b'{"code":"abcdef"}'), timeout=10)
    with open(os.path.join(d, "types", "code.json.tmp"), "w") as f:
        json.dump({"type": "string", "maxLength": 3}, f)
    os.replace(os.path.join(d, "types", "code.json.tmp"), os.path.join(d, "types", "code.json"))

    def refused():
        try:
            c.stub.Put(pb.PutRequest(topic=t, key=b"a", value=b'{"code":"abcdef"}'), timeout=10)
            return False
        except grpc.RpcError as e:
            return rich_status(e)[0].reason == "SCHEMA_VIOLATION"
    deadline_wait(refused, what="the changed $ref target in force")
    assert c.metric("cachecar_schema_reloads_total", topic=t, result="ok") == 1
