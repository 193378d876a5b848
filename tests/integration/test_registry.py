"""value_format: registry topics against the real broker and a real Confluent-compatible
Schema Registry (Apicurio, scripts/registry.sh), records written by the independent
Confluent serializers (confluent-kafka's JSONSerializer, AvroSerializer)."""
import base64
import contextlib
import datetime
import http.server
import json
import os
import struct
import subprocess
import tempfile
import threading

import grpc
import pytest
from google.protobuf import (descriptor_pb2, descriptor_pool, json_format, message_factory,
                             timestamp_pb2)
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import (CACHECARCTL_BIN, SOURCE_DIR, _workdir, create_topic, deadline_wait, pb, produce, unique)
from test_bad_input import call_error, rich_status
from test_watch import Watcher

REGISTRY_SH = os.path.join(SOURCE_DIR, "scripts", "registry.sh")

USER_V1 = {"type": "object", "properties": {"name": {"type": "string"}},
           "required": ["name"]}
# v2 adds an optional field (backward compatible)
USER_V2 = {"type": "object", "properties": {"name": {"type": "string"},
                                            "age": {"type": "integer", "minimum": 0}},
           "required": ["name"]}


def numbered(tag):
    """A schema of its own for one test (a new id): {"n": integer}."""
    return {"$schema": "http://json-schema.org/draft-07/schema#", "title": unique(tag),
            "type": "object", "properties": {"n": {"type": "integer"}}}


class Registry:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="registry-", dir=_workdir())
        self._run("start")
        with open(os.path.join(self.dir, "url")) as f:
            self.url = f.read().strip()
        self.client = SchemaRegistryClient({"url": self.url})

    def _run(self, cmd):
        subprocess.run([REGISTRY_SH, cmd, self.dir], check=True, timeout=300)

    def stop(self):
        self._run("stop")

    def resume(self):
        self._run("resume")


@pytest.fixture(scope="module")
def registry():
    r = Registry()
    yield r
    r.stop()


def json_serializer(registry, schema):
    return JSONSerializer(json.dumps(schema), registry.client)


def encode(serializer, topic, value):
    return serializer(value, SerializationContext(topic, MessageField.VALUE))


def wire(schema_id, payload):
    return b"\x00" + struct.pack(">i", schema_id) + payload


def get(c, topic, key):
    r = c.stub.Get(pb.GetRequest(topic=topic, key=key), timeout=5)
    return json.loads(r.entry.value) if r.found else None


def registry_extra(registry):
    return {"registry": {"url": registry.url, "timeout_ms": 2000}}


@contextlib.contextmanager
def fake_registry(respond):
    """A registry that answers as `respond(path) -> (status, body bytes)` says, for faults
    the real one cannot produce on demand. Yields the sidecar's registry settings."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = respond(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {"registry": {"url": f"http://127.0.0.1:{server.server_port}",
                            "timeout_ms": 5000}}
    finally:
        server.shutdown()


def test_records_of_the_confluent_json_serializer_are_decoded_validated_and_served(
        admin, bootstrap, cachecar_factory, registry):
    t = create_topic(admin, unique("reg-json"))
    v1 = json_serializer(registry, USER_V1)
    v2 = json_serializer(registry, USER_V2)
    # A JSON schema that refers to another subject's (followed, with its rules enforced).
    registry.client.register_schema(t + "-address", Schema(json.dumps(
        {"type": "object", "properties": {"city": {"type": "string"}},
         "required": ["city"]}), "JSON"))
    with_ref = registry.client.register_schema(t + "-with-ref", Schema(json.dumps(
        {"type": "object", "properties": {"home": {"$ref": "address.json"}}}), "JSON",
        references=[SchemaReference("address.json", t + "-address", 1)]))
    ada = encode(v1, t, {"name": "ada"})
    id_v1 = struct.unpack(">i", ada[1:5])[0]
    bob = encode(v2, t, {"name": "bob", "age": 36})  # a later version of the subject
    id_v2 = struct.unpack(">i", bob[1:5])[0]
    assert id_v1 != id_v2
    produce(bootstrap, t, [
        (b"ada", ada),
        (b"bob", bob),
        (b"eve", encode(v1, t, {"name": "eve"})),
        (b"eve", wire(id_v2, b'{"name": "eve", "age": -1}')),  # breaks v2: eve keeps v1's
        (b"raw", b'{"name": "plain JSON"}'),                   # not the wire format
        (b"short", b"\x00\x00\x01"),                           # shorter than the header
        (b"unknown", wire(987654321, b'{"name": "x"}')),       # an id the registry lacks
        (b"neg", wire(-5, b'{"name": "x"}')),
        (b"garbage", wire(id_v1, b"{not json")),
        (b"ref", wire(with_ref, b'{"home": {"city": "x"}}')),
        (b"badref", wire(with_ref, b'{"home": {"town": "x"}}')),  # breaks the referenced
        (b"gone", encode(v1, t, {"name": "gone"})),
        (b"gone", None),                                       # a tombstone still deletes
    ])
    c = cachecar_factory([{"name": t, "value_format": "registry"}],
                         extra=registry_extra(registry)).start()
    c.wait_ready()
    assert get(c, t, b"ada") == {"name": "ada"}
    assert get(c, t, b"bob") == {"name": "bob", "age": 36}
    assert get(c, t, b"eve") == {"name": "eve"}
    assert get(c, t, b"ref") == {"home": {"city": "x"}}
    # Each entry says which schema its record was written with.
    entry = lambda key: c.stub.Get(pb.GetRequest(topic=t, key=key), timeout=5).entry
    assert entry(b"ada").schema_id == id_v1 and entry(b"bob").schema_id == id_v2
    assert entry(b"ref").schema_id == with_ref
    # ... and which version of the topic's subject that is (none for a schema registered
    # under another subject only).
    assert entry(b"ada").subject_version == 1 and entry(b"bob").subject_version == 2
    assert entry(b"ref").HasField("schema_id") and not entry(b"ref").HasField("subject_version")
    listed = c.stub.List(pb.ListRequest(topic=t), timeout=5).entries
    assert {e.key: e.schema_id for e in listed} == {b"ada": id_v1, b"bob": id_v2,
                                                    b"eve": id_v1, b"ref": with_ref}
    # ... and so does each change a watch sees, with the entry it replaced.
    w = Watcher(c.address)
    try:
        w.create(topic=t, key=b"eve", prefix=False, resume_revision=0, prev_entry=True)
        events = []
        while len(events) < 1:
            r = w.next()
            events += list(r.events.events)
        assert events[0].entry.key == b"eve" and events[0].entry.schema_id == id_v1
        assert not events[0].HasField("prev_entry")
        produce(bootstrap, t, [(b"eve", encode(v2, t, {"name": "eve", "age": 3}))])
        while len(events) < 2:
            events += list(w.next().events.events)
        assert events[1].entry.schema_id == id_v2 and events[1].prev_entry.schema_id == id_v1
        assert events[1].entry.subject_version == 2
        assert events[1].prev_entry.subject_version == 1
    finally:
        w.close()
    # The status says which schema ids the topic's records were written with, and how many
    # of each were applied (a tombstone has none).
    ids = lambda st: {e.schema_id: e.records_applied for e in
                      [x for x in st.topics if x.topic == t][0].schema_ids}
    assert ids(c.status()) == {id_v1: 3, id_v2: 2, with_ref: 1}  # eve, then eve again
    out = c.ctl("status", "-o", "json")
    topic = [x for x in json.loads(out.stdout)["topics"] if x["topic"] == t][0]
    assert topic["schema_ids"] == [{"schema_id": i, "records_applied": n} for i, n in
                                   sorted({id_v1: 3, id_v2: 2, with_ref: 1}.items())], out
    text = c.ctl("status").stdout.decode()
    assert f"{t} " in text and "SCHEMA_ID" in text, text
    got = json.loads(c.ctl("get", "-o", "json", t, "bob").stdout)
    assert got["schema_id"] == id_v2 and got["value"] == {"name": "bob", "age": 36}, got
    assert got["subject_version"] == 2, got
    for key in (b"raw", b"short", b"unknown", b"neg", b"garbage", b"badref", b"gone"):
        assert get(c, t, key) is None, key
    rejected = lambda reason: c.metric("cachecar_materializer_records_rejected_total",
                                       topic=t, reason=reason)
    assert rejected("schema_violation") == 2
    assert rejected("not_registry_format") == 2
    assert rejected("unknown_schema_id") == 2
    assert rejected("invalid_json") == 1
    listed = c.stub.ListRejectedRecords(pb.ListRejectedRecordsRequest(topic=t), timeout=5)
    details = {r.key: r.detail for r in listed.records}
    assert "987654321" in details[b"unknown"] and "-5" in details[b"neg"]
    assert "/age" in details[b"eve"]
    assert "city" in details[b"badref"]
    # Each schema was asked of the registry once, then served from memory: v1, v2,
    # with_ref and the address it refers to, and the subject versions of the first three.
    assert c.metric("cachecar_registry_requests_total", result="ok") == 7
    assert c.metric("cachecar_registry_requests_total", result="not_found") == 2
    assert c.metric("cachecar_registry_schema_lookups_total", result="hit") >= 2
    assert c.metric("cachecar_registry_up") == 1


AVRO_USER = {
    "type": "record", "name": "User", "namespace": "com.acme",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "age", "type": "int"},
        {"name": "nick", "type": ["null", "string"], "default": None},
        {"name": "seen", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "avatar", "type": "bytes"},
        {"name": "plan", "type": {"type": "enum", "name": "Plan", "symbols": ["FREE", "PRO"]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "limits", "type": {"type": "map", "values": "double"}},
        {"name": "home", "type": ["null", {"type": "record", "name": "Address",
                                           "fields": [{"name": "city", "type": "string"}]}]},
    ]}


def test_avro_records_decode_to_avros_json_encoding(admin, bootstrap, cachecar_factory,
                                                    registry):
    t = create_topic(admin, unique("reg-avro"))
    ser = AvroSerializer(registry.client, json.dumps(AVRO_USER))
    seen = 1700000000123
    ada = encode(ser, t, {"name": "ada", "age": 36, "nick": "countess",
                          "seen": datetime.datetime.fromtimestamp(seen / 1000,
                                                                  datetime.timezone.utc),
                          "avatar": b"\x00\xffA", "plan": "PRO", "tags": ["math", "poetry"],
                          "limits": {"b": 2.5, "a": float("nan")},
                          "home": {"city": "London"}})
    bob = encode(ser, t, {"name": "bob", "age": 7, "nick": None, "seen": 0, "avatar": b"",
                          "plan": "FREE", "tags": [], "limits": {}, "home": None})
    avro_id = struct.unpack(">i", ada[1:5])[0]
    recursive = AvroSerializer(registry.client, json.dumps(
        {"type": "record", "name": "Node", "fields": [
            {"name": "next", "type": ["null", "Node"], "default": None}]}),
        conf={"subject.name.strategy": lambda ctx, name: t + "-recursive"})
    produce(bootstrap, t, [
        (b"ada", ada),
        (b"bob", bob),
        (b"truncated", ada[:len(ada) - 3]),
        (b"trailing", ada + b"\x00"),
        # an array claiming 2^40 items: refused by the allocation cap, not attempted
        (b"huge", wire(avro_id, b"\x06ada\x48\x00" + b"\x80\x80\x80\x80\x80\x80\x02")),
        (b"node", encode(recursive, t, {"next": {"next": None}})),
    ])
    c = cachecar_factory([{"name": t, "value_format": "registry"}],
                         extra=registry_extra(registry)).start()
    c.wait_ready()
    # Avro's JSON encoding: unions name their branch, bytes are one code point per byte,
    # logical types are their underlying type, a NaN is a string, map keys sorted.
    raw = c.stub.Get(pb.GetRequest(topic=t, key=b"ada"), timeout=5).entry.value
    stored = json.loads(raw, object_pairs_hook=lambda pairs: pairs)  # keeps the field order
    assert stored == [
        ("name", "ada"), ("age", 36), ("nick", [("string", "countess")]), ("seen", seen),
        ("avatar", "\u0000\u00ffA"), ("plan", "PRO"), ("tags", ["math", "poetry"]),
        ("limits", [("a", "NaN"), ("b", 2.5)]),
        ("home", [("com.acme.Address", [("city", "London")])]),
    ]
    assert get(c, t, b"bob") == {"name": "bob", "age": 7, "nick": None, "seen": 0,
                                 "avatar": "", "plan": "FREE", "tags": [], "limits": {},
                                 "home": None}
    for key in (b"truncated", b"trailing", b"huge", b"node"):
        assert get(c, t, key) is None, key
    rejected = lambda reason: c.metric("cachecar_materializer_records_rejected_total",
                                       topic=t, reason=reason)
    assert rejected("undecodable_payload") == 3
    assert rejected("unsupported_schema") == 1
    details = [r.detail for r in c.stub.ListRejectedRecords(
        pb.ListRejectedRecordsRequest(topic=t), timeout=5).records]
    assert any("recursive" in d for d in details), details
    assert any("after the Avro datum" in d for d in details), details


def protobuf_classes(tag):
    """Message classes built at run time (no protoc): acme.User, with a nested message,
    and acme.Team, second in the file (so its records carry message index [1])."""
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name=f"acme/{tag}.proto", package="acme" + tag,
                                             syntax="proto3")
    fdp.dependency.append("google/protobuf/timestamp.proto")
    user = fdp.message_type.add(name="User")
    user.field.add(name="name", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    user.field.add(name="user_id", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    user.field.add(name="seen", number=3, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                   type_name=".google.protobuf.Timestamp")
    user.field.add(name="tags", number=4, type=F.TYPE_STRING, label=F.LABEL_REPEATED)
    user.field.add(name="home", number=5, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                   type_name=f".acme{tag}.User.Address")
    user.field.add(name="plan", number=6, type=F.TYPE_ENUM, label=F.LABEL_OPTIONAL,
                   type_name=f".acme{tag}.Plan")
    user.nested_type.add(name="Address").field.add(name="city", number=1, type=F.TYPE_STRING,
                                                   label=F.LABEL_OPTIONAL)
    team = fdp.message_type.add(name="Team")
    team.field.add(name="title", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    plan = fdp.enum_type.add(name="Plan")
    plan.value.add(name="FREE", number=0)
    plan.value.add(name="PRO", number=1)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(timestamp_pb2.DESCRIPTOR.serialized_pb))
    pool.Add(fdp)
    return (message_factory.GetMessageClass(pool.FindMessageTypeByName(f"acme{tag}.User")),
            message_factory.GetMessageClass(pool.FindMessageTypeByName(f"acme{tag}.Team")))


def test_protobuf_records_decode_to_the_proto3_json_mapping(admin, bootstrap, cachecar_factory,
                                                            registry):
    t = create_topic(admin, unique("reg-proto"))
    tag = unique("p").replace("-", "")
    User, Team = protobuf_classes(tag)
    conf = {"use.deprecated.format": False}
    users = ProtobufSerializer(User, registry.client, conf)
    teams = ProtobufSerializer(Team, registry.client, dict(
        conf, **{"subject.name.strategy": lambda ctx, name: t + "-team"}))
    ada = User(name="ada", user_id=2**40, tags=["math"], plan=1)
    ada.seen.seconds = 1700000000
    ada.home.city = "London"
    ada_bytes = encode(users, t, ada)
    pb_id = struct.unpack(">i", ada_bytes[1:5])[0]
    # A schema registered as .proto text (not a descriptor), records framed here.
    text_id = registry.client.register_schema(t + "-text", Schema(
        'syntax = "proto3";\npackage text%s;\nmessage Point { int32 x = 1; int32 y = 2; }\n'
        % tag, "PROTOBUF"))
    produce(bootstrap, t, [
        (b"ada", ada_bytes),
        (b"empty", encode(users, t, User())),
        (b"team", encode(teams, t, Team(title="core"))),        # message index [1]
        (b"point", wire(text_id, b"\x00\x08\x03\x10\x04")),    # Point{x: 3, y: 4}
        (b"noindex", wire(pb_id, b"\x02\x0e" + ada.SerializeToString())),  # index 7: none
        (b"badindexes", wire(pb_id, b"\x7f")),                  # -64 indexes
        (b"garbage", wire(pb_id, b"\x00\xff\xff\xff")),
        (b"cut", ada_bytes[:-4]),
    ])
    c = cachecar_factory([{"name": t, "value_format": "registry"}],
                         extra=registry_extra(registry)).start()
    c.wait_ready()
    # protobuf's own Python JSON mapping is the independent expectation
    assert get(c, t, b"ada") == json_format.MessageToDict(ada)
    assert get(c, t, b"ada") == {"name": "ada", "userId": str(2**40), "tags": ["math"],
                                 "plan": "PRO", "seen": "2023-11-14T22:13:20Z",
                                 "home": {"city": "London"}}
    assert get(c, t, b"empty") == {}
    assert get(c, t, b"team") == {"title": "core"}
    assert get(c, t, b"point") == {"x": 3, "y": 4}
    for key in (b"noindex", b"badindexes", b"garbage", b"cut"):
        assert get(c, t, key) is None, key
    assert c.metric("cachecar_materializer_records_rejected_total", topic=t,
                    reason="undecodable_payload") == 4


def test_references_between_avro_and_protobuf_schemas_are_followed(
        admin, bootstrap, cachecar_factory, registry):
    """The serializers register a schema that refers to another subject's (Avro: a named
    type; Protobuf: an imported file, itself importing one): cachecar fetches the referenced
    versions, decodes with them, and encodes Puts with them for Confluent's deserializers."""
    t = create_topic(admin, unique("reg-refs"))
    ctx = SerializationContext(t, MessageField.VALUE)
    address = {"type": "record", "name": "Address", "namespace": "com.refs",
               "fields": [{"name": "city", "type": "string"}]}
    registry.client.register_schema(t + "-address", Schema(json.dumps(address), "AVRO"))
    person = {"type": "record", "name": "Person", "namespace": "com.refs",
              "fields": [{"name": "name", "type": "string"},
                         {"name": "home", "type": "com.refs.Address"}]}
    avro = AvroSerializer(registry.client, Schema(
        json.dumps(person), "AVRO", [SchemaReference("com.refs.Address", t + "-address", 1)]))

    tag = unique("r").replace("-", "")
    F = descriptor_pb2.FieldDescriptorProto
    geo = descriptor_pb2.FileDescriptorProto(name=f"refs/{tag}/geo.proto", package=tag,
                                             syntax="proto3")
    geo.message_type.add(name="Point").field.add(name="lat", number=1, type=F.TYPE_DOUBLE,
                                                 label=F.LABEL_OPTIONAL)
    place = descriptor_pb2.FileDescriptorProto(name=f"refs/{tag}/place.proto", package=tag,
                                               syntax="proto3", dependency=[geo.name])
    p = place.message_type.add(name="Place")
    p.field.add(name="city", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    p.field.add(name="at", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                type_name=f".{tag}.Point")
    user = descriptor_pb2.FileDescriptorProto(name=f"refs/{tag}/user.proto", package=tag,
                                              syntax="proto3", dependency=[place.name])
    u = user.message_type.add(name="Member")
    u.field.add(name="name", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    u.field.add(name="home", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                type_name=f".{tag}.Place")
    pool = descriptor_pool.DescriptorPool()
    for f in (geo, place, user):
        pool.Add(f)
    Member = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{tag}.Member"))
    members = create_topic(admin, unique("reg-refs-proto"))
    proto = ProtobufSerializer(Member, registry.client, {"use.deprecated.format": False})
    ada = Member(name="ada")
    ada.home.city = "London"
    ada.home.at.lat = 51.5

    produce(bootstrap, t, [(b"ada", avro({"name": "ada", "home": {"city": "London"}}, ctx))])
    produce(bootstrap, members, [(b"ada", proto(ada, SerializationContext(
        members, MessageField.VALUE)))])
    c = cachecar_factory([{"name": t, "value_format": "registry", "read_only": False},
                          {"name": members, "value_format": "registry", "read_only": False}],
                         extra=registry_extra(registry)).start()
    c.wait_ready()
    assert get(c, t, b"ada") == {"name": "ada", "home": {"city": "London"}}
    assert get(c, members, b"ada") == json_format.MessageToDict(ada)
    assert c.metric("cachecar_materializer_records_rejected_total", topic=t) == 0
    assert c.metric("cachecar_materializer_records_rejected_total", topic=members) == 0

    # Puts encode with the referenced schemas; Confluent's deserializers read them.
    r = c.stub.Put(pb.PutRequest(topic=t, key=b"bob", value=json.dumps(
        {"name": "bob", "home": {"city": "Paris"}}).encode()), timeout=30)
    assert r.applied
    assert AvroDeserializer(registry.client)(read_record(bootstrap, t, r.partition, r.offset),
                                             ctx) == {"name": "bob", "home": {"city": "Paris"}}
    e = call_error(c.stub.Put, pb.PutRequest(topic=t, key=b"bad", value=json.dumps(
        {"name": "bad", "home": {"town": "x"}}).encode()))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "value/home/city" in rich_status(e)[1]
    r = c.stub.Put(pb.PutRequest(topic=members, key=b"bob", value=json.dumps(
        {"name": "bob", "home": {"city": "Oslo", "at": {"lat": 59.9}}}).encode()), timeout=30)
    assert r.applied
    got = ProtobufDeserializer(Member, {"use.deprecated.format": False})(
        read_record(bootstrap, members, r.partition, r.offset),
        SerializationContext(members, MessageField.VALUE))
    assert got.home.city == "Oslo" and got.home.at.lat == 59.9

    # A restart with the registry down: the referenced schemas were kept with the rest.
    c.stop()
    produce(bootstrap, t, [(b"eve", avro({"name": "eve", "home": {"city": "Rome"}}, ctx))])
    registry.stop()
    try:
        c.start()
        c.wait_ready(timeout=60)
        deadline_wait(lambda: get(c, t, b"eve") == {"name": "eve", "home": {"city": "Rome"}},
                      what="the later record decoded with the kept schemas")
        assert c.metric("cachecar_registry_requests_total") == 0
    finally:
        registry.resume()


def test_hostile_references_are_refused_not_followed_forever(admin, bootstrap,
                                                             cachecar_factory):
    """A registry whose references loop, go on without end or name what it does not have
    (faults the real one refuses to register): the records under those ids are rejected
    as unsupported_schema, with a reason; the partition goes on."""
    person = {"type": "record", "name": "P", "fields": [{"name": "n", "type": "int"}]}
    asked = []

    def answer(path):
        ref = lambda subject, version: {"name": f"t{subject}{version}", "subject": subject,
                                        "version": version}
        schema = lambda refs: {"id": 9, "schema": json.dumps(person), "references": refs}
        if path == "/schemas/ids/1":
            return schema([ref("loop", 1)])
        if path == "/subjects/loop/versions/1":
            return schema([ref("loop", 2)])
        if path == "/subjects/loop/versions/2":
            return schema([ref("loop", 1)])  # back to the first: a cycle
        if path == "/schemas/ids/2":
            return schema([ref("deep", 1)])
        if path.startswith("/subjects/deep/versions/"):
            n = int(path.rsplit("/", 1)[1])
            return schema([ref("deep", n + 1)])  # a new one every time
        if path == "/schemas/ids/3":
            return schema([ref("missing", 1)])
        if path == "/schemas/ids/4":
            return schema([])
        return None

    def respond(path):
        asked.append(path)
        found = answer(path)
        if found is None:
            return 404, json.dumps({"error_code": 40401, "message": "not found"}).encode()
        return 200, json.dumps(found).encode()

    with fake_registry(respond) as extra:
        t = create_topic(admin, unique("reg-hostile-refs"))
        produce(bootstrap, t, [(b"loop", wire(1, b"\x02")), (b"deep", wire(2, b"\x02")),
                               (b"missing", wire(3, b"\x02")), (b"fine", wire(4, b"\x04"))])
        c = cachecar_factory([{"name": t, "value_format": "registry"}], extra=extra).start()
        c.wait_ready(timeout=60)
        assert get(c, t, b"fine") == {"n": 2}
        for key in (b"loop", b"deep", b"missing"):
            assert get(c, t, key) is None, key
        details = {r.key: (r.reason, r.detail) for r in c.stub.ListRejectedRecords(
            pb.ListRejectedRecordsRequest(topic=t), timeout=5).records}
        assert details[b"loop"][0] == "unsupported_schema" and "cycle" in details[b"loop"][1]
        assert details[b"deep"][0] == "unsupported_schema" and "deep" in details[b"deep"][1]
        assert details[b"missing"][0] == "unsupported_schema"
        assert "does not have" in details[b"missing"][1]
        assert len([p for p in asked if p.startswith("/subjects/deep/")]) <= 16


def test_keys_in_the_registry_format_are_decoded_and_looked_up_as_json(
        admin, bootstrap, cachecar_factory, registry):
    """Keys written by Confluent's key serializers (Avro, as Debezium writes them; JSON
    Schema): stored as compact JSON with sorted members, and found however a client spaces
    or orders the JSON it asks with."""
    t = create_topic(admin, unique("reg-keys"))
    kctx = SerializationContext(t, MessageField.KEY)
    key_ser = AvroSerializer(registry.client, json.dumps(
        {"type": "record", "name": "Key", "namespace": "com.keys",
         "fields": [{"name": "id", "type": "long"}, {"name": "region", "type": "string"}]}))
    value_ser = json_serializer(registry, USER_V1)
    key = lambda i, region="eu": key_ser({"id": i, "region": region}, kctx)
    key_id = struct.unpack(">i", key(1)[1:5])[0]
    j = create_topic(admin, unique("reg-json-keys"))
    json_key_ser = JSONSerializer(json.dumps(
        {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
         "properties": {"a": {}, "b": {"type": "integer"}}, "required": ["b"]}),
        registry.client, conf={"auto.register.schemas": True, "validate": False})
    produce(bootstrap, t, [
        (key(1), encode(value_ser, t, {"name": "ada"})),
        (key(2), encode(value_ser, t, {"name": "bob"})),
        (key(2), None),                                   # a tombstone deletes by its key
        (key(3, "us"), encode(value_ser, t, {"name": "eve"})),
        (b"plain-key", encode(value_ser, t, {"name": "x"})),      # not the wire format
        (wire(987654321, b"\x02"), encode(value_ser, t, {"name": "y"})),  # unknown id
        (wire(key_id, b"\x02"), encode(value_ser, t, {"name": "z"})),     # cut short
    ])
    produce(bootstrap, j, [
        (json_key_ser({"b": 2, "a": [1, 2]}, SerializationContext(j, MessageField.KEY)),
         b'{"n": 1}'),
        (json_key_ser({"a": 1}, SerializationContext(j, MessageField.KEY)), b'{"n": 2}'),
    ])
    c = cachecar_factory([{"name": t, "key_format": "registry", "value_format": "registry"},
                          {"name": j, "key_format": "registry"}],
                         extra=registry_extra(registry)).start()
    c.wait_ready()
    r = c.stub.Get(pb.GetRequest(topic=t, key=b'{ "region" : "eu", "id": 1 }'), timeout=5)
    assert r.found and json.loads(r.entry.value) == {"name": "ada"}
    assert r.entry.key == b'{"id":1,"region":"eu"}'
    assert not c.stub.Get(pb.GetRequest(topic=t, key=b'{"id":2,"region":"eu"}'),
                          timeout=5).found
    batch = c.stub.BatchGet(pb.BatchGetRequest(topic=t, keys=[
        b'{"id":3,"region":"us"}', b'{"region":"us","id":3}', b'{"id":4,"region":"us"}']),
        timeout=5)
    assert [x.found for x in batch.results] == [True, True, False]
    assert batch.results[1].key == b'{"region":"us","id":3}'  # answers the key asked
    listed = c.stub.List(pb.ListRequest(topic=t), timeout=5).entries
    assert [e.key for e in listed] == [b'{"id":1,"region":"eu"}', b'{"id":3,"region":"us"}']
    e = call_error(c.stub.Get, pb.GetRequest(topic=t, key=b"plain-key"))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "key_format: registry" in rich_status(e)[1]["key"]
    details = {r.reason: r.detail for r in c.stub.ListRejectedRecords(
        pb.ListRejectedRecordsRequest(topic=t), timeout=5).records}
    assert set(details) == {"not_registry_format", "unknown_schema_id", "undecodable_payload"}
    assert all(d.startswith("key: ") or "key's" in d for d in details.values()), details
    # A JSON Schema key: validated, and its members sorted.
    r = c.stub.Get(pb.GetRequest(topic=j, key=b'{"b": 2, "a": [1, 2]}'), timeout=5)
    assert r.found and r.entry.key == b'{"a":[1,2],"b":2}'
    assert c.metric("cachecar_materializer_records_rejected_total", topic=j,
                    reason="schema_violation") == 1  # {"a": 1} lacks "b"


def test_puts_and_deletes_to_registry_keyed_topics_encode_the_key_for_confluent_consumers(
        admin, bootstrap, cachecar_factory, registry):
    t = create_topic(admin, unique("reg-put-keys"), partitions=3)
    kctx = SerializationContext(t, MessageField.KEY)
    key_schema = {"type": "record", "name": "Key", "namespace": "com.putkeys",
                  "fields": [{"name": "id", "type": "long"}, {"name": "region", "type": "string"}]}
    key_ser = AvroSerializer(registry.client, json.dumps(key_schema))
    key_id = struct.unpack(">i", key_ser({"id": 0, "region": "x"}, kctx)[1:5])[0]
    encode(json_serializer(registry, USER_V1), t, {"name": "x"})  # the value's subject
    j = create_topic(admin, unique("reg-put-json-keys"))
    JSONSerializer(json.dumps({"type": "object", "properties": {"b": {"type": "integer"}},
                               "required": ["b"]}), registry.client)(
        {"b": 1}, SerializationContext(j, MessageField.KEY))
    nosubject = create_topic(admin, unique("reg-put-no-key-subject"))
    c = cachecar_factory([
        {"name": t, "key_format": "registry", "value_format": "registry", "read_only": False},
        {"name": j, "key_format": "registry", "read_only": False},
        {"name": nosubject, "key_format": "registry", "read_only": False}],
        extra=registry_extra(registry)).start()
    c.wait_ready()

    # The key as JSON, spaced and ordered any way: encoded with the key subject's latest
    # schema, so Confluent's deserializer reads it, and served under its stored form.
    r = c.stub.Put(pb.PutRequest(topic=t, key=b'{"region": "eu", "id": 7}',
                                 value=b'{"name": "ada"}'), timeout=30)
    assert r.applied
    got = c.stub.Get(pb.GetRequest(topic=t, key=b'{"id":7,"region":"eu"}'), timeout=5)
    assert got.found and json.loads(got.entry.value) == {"name": "ada"}
    msg = read_message(bootstrap, t, r.partition, r.offset)
    assert struct.unpack(">i", msg.key()[1:5])[0] == key_id
    assert AvroDeserializer(registry.client)(msg.key(), kctx) == {"id": 7, "region": "eu"}
    # The same key bytes go to the same partition from the Java client's partitioner, so
    # cachecar's writes and other producers' compact and order together.
    scratch = create_topic(admin, unique("reg-put-keys-scratch"), partitions=3)
    assert r.partition == java_partition(bootstrap, scratch, msg.key())

    d = c.stub.Delete(pb.DeleteRequest(topic=t, key=b'{"id": 7, "region": "eu"}'), timeout=30)
    assert d.applied and d.partition == r.partition
    assert not c.stub.Get(pb.GetRequest(topic=t, key=b'{"id":7,"region":"eu"}'),
                          timeout=5).found

    # A key that does not fit its schema: every problem by JSON Pointer under "key",
    # nothing produced.
    e = call_error(c.stub.Put, pb.PutRequest(topic=t, key=b'{"id": "seven"}',
                                             value=b'{"name": "ada"}'))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    info, violations = rich_status(e)
    assert info.reason == "SCHEMA_VIOLATION" and violations, violations
    assert all(f.startswith("key") for f in violations), violations
    # A JSON Schema key: validated, written as its canonical JSON.
    e = call_error(c.stub.Put, pb.PutRequest(topic=j, key=b'{"a": 1}', value=b'{}'))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(rich_status(e)[1]) == {"key"}, rich_status(e)[1]  # "b" is required
    r = c.stub.Put(pb.PutRequest(topic=j, key=b'{ "b": 2, "a": [1] }', value=b'{"n": 1}'),
                   timeout=30)
    assert r.applied
    assert read_message(bootstrap, j, r.partition, r.offset).key()[5:] == b'{"a":[1],"b":2}'
    assert c.stub.Get(pb.GetRequest(topic=j, key=b'{"a":[1],"b":2}'), timeout=5).found
    # A hostile key (800 KB of nested brackets, under the 1 MiB key limit): refused, and
    # the sidecar serves on.
    deep = b"[" * 400000 + b"]" * 400000
    for call, req in ((c.stub.Get, pb.GetRequest(topic=t, key=deep)),
                      (c.stub.Put, pb.PutRequest(topic=t, key=deep, value=b'{"name": "x"}')),
                      (c.stub.Delete, pb.DeleteRequest(topic=t, key=deep))):
        e = call_error(call, req)
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "nested at most 128 deep" in rich_status(e)[1]["key"]
    assert c.stub.Get(pb.GetRequest(topic=j, key=b'{"a":[1],"b":2}'), timeout=5).found
    # No key subject in the registry: said, nothing produced.
    e = call_error(c.stub.Put, pb.PutRequest(topic=nosubject, key=b'{"id": 1}', value=b'{}'))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rich_status(e)[0].reason == "REGISTRY_SUBJECT_NOT_FOUND"
    assert nosubject + "-key" in e.details()


def java_partition(bootstrap, topic, key):
    """The partition the Java client's partitioner (murmur2 of the key bytes) gives `key`
    on a topic with as many partitions as `topic`, as librdkafka's murmur2_random computes
    it (a record is produced to `topic` to find out)."""
    got = []
    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    p.produce(topic, key=key, value=b"{}", on_delivery=lambda err, m: got.append(m.partition()))
    assert p.flush(30) == 0 and len(got) == 1
    return got[0]


def test_put_encodes_with_the_subjects_latest_schema_for_confluent_consumers(
        admin, bootstrap, cachecar_factory, registry):
    t = create_topic(admin, unique("reg-put"))
    encode(json_serializer(registry, USER_V1), t, {"name": "registered"})  # registers v1
    missing = create_topic(admin, unique("reg-nosubject"))
    c = cachecar_factory([{"name": t, "value_format": "registry", "read_only": False},
                          {"name": missing, "value_format": "registry", "read_only": False}],
                         extra=registry_extra(registry)).start()
    c.wait_ready()
    r = c.stub.Put(pb.PutRequest(topic=t, key=b"k1", value=b'{"name": "ada"}'), timeout=30)
    assert r.applied
    assert get(c, t, b"k1") == {"name": "ada"}

    # An independent consumer reads the record with Confluent's deserializer.
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("g"),
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(t, r.partition, r.offset)])
    msg = consumer.poll(30)
    consumer.close()
    assert msg is not None and msg.error() is None
    assert msg.value()[0] == 0
    deser = JSONDeserializer(None, schema_registry_client=registry.client)
    assert deser(msg.value(), SerializationContext(t, MessageField.VALUE)) == {"name": "ada"}

    # A value the latest schema refuses: every violation, nothing produced.
    e = call_error(c.stub.Put, pb.PutRequest(topic=t, key=b"k2", value=b'{"age": "x"}'))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    info, violations = rich_status(e)
    assert info.reason == "SCHEMA_VIOLATION"
    assert "value" in violations
    # A topic whose subject the registry lacks.
    e = call_error(c.stub.Put, pb.PutRequest(topic=missing, key=b"k", value=b'{"a": 1}'))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rich_status(e)[0].reason == "REGISTRY_SUBJECT_NOT_FOUND"

    # cachecarctl validate asks the registry as the sidecar does.
    def validate(topic, doc):
        return subprocess.run([CACHECARCTL_BIN, "validate", "-c", c.config_path, "-o", "json",
                               topic, doc], capture_output=True, timeout=30,
                              env=dict(os.environ, KAFKA_BOOTSTRAP=bootstrap))
    ok = validate(t, '{"name": "ada"}')
    assert ok.returncode == 0 and json.loads(ok.stdout)["valid"], ok
    bad = validate(t, '{"age": "x"}')
    assert bad.returncode == 5 and json.loads(bad.stdout)["reason"] == "SCHEMA_VIOLATION", bad
    none = validate(missing, '{"a": 1}')
    assert none.returncode == 2 and b"no subject" in none.stderr, none


def test_puts_to_a_topic_pinned_to_a_subject_version_encode_with_that_version(
        admin, bootstrap, cachecar_factory, registry):
    t = create_topic(admin, unique("reg-pinned"))
    v1 = encode(json_serializer(registry, USER_V1), t, {"name": "a"})  # version 1
    encode(json_serializer(registry, USER_V2), t, {"name": "b"})       # version 2, the latest
    c = cachecar_factory([{"name": t, "value_format": "registry", "read_only": False,
                           "registry_version": 1}],
                         extra=registry_extra(registry)).start()
    c.wait_ready()
    # v2 would refuse a negative age; the pinned v1 says nothing of it.
    r = c.stub.Put(pb.PutRequest(topic=t, key=b"k", value=b'{"name": "x", "age": -1}'),
                   timeout=30)
    assert r.applied
    written = read_record(bootstrap, t, r.partition, r.offset)
    assert written[:5] == v1[:5]  # the wire header names version 1's id
    e = call_error(c.stub.Put, pb.PutRequest(topic=t, key=b"k2", value=b'{"age": 1}'))
    assert rich_status(e)[0].reason == "SCHEMA_VIOLATION"  # v1 still needs a name

    missing = create_topic(admin, unique("reg-pinned-missing"))
    encode(json_serializer(registry, USER_V1), missing, {"name": "a"})
    c2 = cachecar_factory([{"name": missing, "value_format": "registry", "read_only": False,
                            "registry_version": 7}],
                          extra=registry_extra(registry)).start()
    c2.wait_ready()
    e = call_error(c2.stub.Put, pb.PutRequest(topic=missing, key=b"k", value=b'{"name": "x"}'))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = rich_status(e)[0]
    assert info.reason == "REGISTRY_SUBJECT_NOT_FOUND"


def test_a_registry_outage_during_catch_up_waits_then_resumes(
        admin, bootstrap, cachecar_factory, registry):
    t = create_topic(admin, unique("reg-outage"))
    ser = json_serializer(registry, numbered("outage"))
    produce(bootstrap, t, [(b"a", encode(ser, t, {"n": 1})), (b"b", encode(ser, t, {"n": 2}))])
    registry.stop()
    try:
        c = cachecar_factory([{"name": t, "value_format": "registry"}],
                             extra=registry_extra(registry)).start()

        def waiting():
            code, body = c.http("/readyz")
            return code == 503 and "waiting for the schema registry" in body
        deadline_wait(waiting, timeout=60, what="/readyz to say it waits for the registry")
        assert c.metric("cachecar_registry_up") == 0
        assert c.metric("cachecar_materializer_records_rejected_total", topic=t) == 0
        assert not c.status().ready
    finally:
        registry.resume()
    c.wait_ready(timeout=120)
    assert get(c, t, b"a") == {"n": 1}
    assert get(c, t, b"b") == {"n": 2}
    assert c.metric("cachecar_registry_up") == 1
    assert c.metric("cachecar_materializer_records_rejected_total", topic=t) == 0


def test_a_restart_with_the_registry_down_decodes_with_the_kept_schemas(
        admin, bootstrap, cachecar_factory, registry):
    t = create_topic(admin, unique("reg-restart"))
    ser = json_serializer(registry, numbered("restart"))
    produce(bootstrap, t, [(b"a", encode(ser, t, {"n": 1}))])
    c = cachecar_factory([{"name": t, "value_format": "registry"}],
                         extra=registry_extra(registry)).start()
    c.wait_ready()
    assert get(c, t, b"a") == {"n": 1}
    c.stop()
    # The serializer keeps the id it registered, so it writes on without the registry.
    later = encode(ser, t, {"n": 2})
    registry.stop()
    try:
        produce(bootstrap, t, [(b"b", later)])
        c.start()
        c.wait_ready(timeout=60)
        deadline_wait(lambda: get(c, t, b"b") == {"n": 2}, what="the later record decoded")
        assert c.metric("cachecar_registry_requests_total") == 0
        # Which version of the subject it is was kept with the schema.
        assert c.stub.Get(pb.GetRequest(topic=t, key=b"b"), timeout=5).entry.subject_version == 1
    finally:
        registry.resume()

def read_message(bootstrap, topic, partition, offset):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("g"),
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, partition, offset)])
    msg = consumer.poll(30)
    consumer.close()
    assert msg is not None and msg.error() is None
    return msg


def read_record(bootstrap, topic, partition, offset):
    return read_message(bootstrap, topic, partition, offset).value()


def test_puts_to_avro_and_protobuf_subjects_are_read_by_confluents_deserializers(
        admin, bootstrap, cachecar_factory, registry):
    people = create_topic(admin, unique("reg-put-avro"))
    encode(AvroSerializer(registry.client, json.dumps(AVRO_USER)), people, {
        "name": "x", "age": 1, "nick": None, "seen": 0, "avatar": b"", "plan": "FREE",
        "tags": [], "limits": {}, "home": None})  # registers the subject
    tag = unique("q").replace("-", "")
    User, _ = protobuf_classes(tag)
    members = create_topic(admin, unique("reg-put-proto"))
    encode(ProtobufSerializer(User, registry.client, {"use.deprecated.format": False}),
           members, User(name="x"))
    c = cachecar_factory([{"name": people, "value_format": "registry", "read_only": False},
                          {"name": members, "value_format": "registry", "read_only": False}],
                         extra=registry_extra(registry)).start()
    c.wait_ready()

    ada = {"name": "ada", "age": 36, "nick": {"string": "countess"}, "seen": 1700000000123,
           "avatar": "\u0000\u00ffA", "plan": "PRO", "tags": ["math"], "limits": {"a": 1.5},
           "home": {"com.acme.Address": {"city": "London"}}}
    r = c.stub.Put(pb.PutRequest(topic=people, key=b"ada", value=json.dumps(ada).encode()),
                   timeout=30)
    assert r.applied and get(c, people, b"ada") == ada  # read back as it was written
    got = AvroDeserializer(registry.client)(read_record(bootstrap, people, r.partition, r.offset),
                                            SerializationContext(people, MessageField.VALUE))
    assert got["name"] == "ada" and got["nick"] == "countess" and got["avatar"] == b"\x00\xffA"
    assert got["home"] == {"city": "London"} and got["plan"] == "PRO"
    assert int(got["seen"].timestamp() * 1000) == 1700000000123

    # Every problem at once, by JSON Pointer; nothing produced.
    e = call_error(c.stub.Put, pb.PutRequest(topic=people, key=b"bad", value=json.dumps({
        "name": 5, "age": 2**40, "nick": "bare string", "seen": 0, "avatar": "\u0100",
        "plan": "GOLD", "tags": [1], "limits": {}, "home": None, "extra": 1}).encode()))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    info, violations = rich_status(e)
    assert info.reason == "SCHEMA_VIOLATION"
    assert set(violations) == {"value/name", "value/age", "value/nick", "value/avatar",
                               "value/plan", "value/tags/0", "value/extra"}, violations

    r = c.stub.Put(pb.PutRequest(topic=members, key=b"ada", value=json.dumps(
        {"name": "ada", "userId": "42", "plan": "PRO"}).encode()), timeout=30)
    assert r.applied and get(c, members, b"ada") == {"name": "ada", "userId": "42", "plan": "PRO"}
    got = ProtobufDeserializer(User, {"use.deprecated.format": False})(
        read_record(bootstrap, members, r.partition, r.offset),
        SerializationContext(members, MessageField.VALUE))
    assert got.name == "ada" and got.user_id == 42 and got.plan == 1
    e = call_error(c.stub.Put, pb.PutRequest(topic=members, key=b"bad",
                                             value=b'{"name": "ada", "nope": 1}'))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rich_status(e)[0].reason == "SCHEMA_VIOLATION"

def test_a_registry_answering_garbage_is_waited_on_not_believed(admin, bootstrap,
                                                                 cachecar_factory):
    """A registry whose answers are not schemas (a fault the real one cannot produce on
    demand: a proxy's error page, a truncated or oversized body): the partition waits,
    nothing is skipped or served wrong, and it goes on once the answers are schemas."""
    answers = [b"<html>502 Bad Gateway</html>", b'{"schema": 42}', b'{"id": 1}',
               b"x" * (17 << 20)]  # over the 16 MiB cap
    served = []

    def respond(path):
        body = answers[min(len(served), len(answers) - 1)] if answers else json.dumps(
            {"schema": json.dumps({"type": "object"}), "schemaType": "JSON"}).encode()
        served.append(path)
        return 200, body

    with fake_registry(respond) as extra:
        t = create_topic(admin, unique("reg-garbage"))
        produce(bootstrap, t, [(b"a", wire(7, b'{"n": 1}'))])
        c = cachecar_factory([{"name": t, "value_format": "registry"}], extra=extra).start()
        deadline_wait(lambda: c.metric("cachecar_registry_requests_total",
                                       result="bad_answer") >= len(answers),
                      timeout=120, what="every bad answer taken as one")
        code, body = c.http("/readyz")
        assert code == 503 and "waiting for the schema registry" in body
        assert c.metric("cachecar_registry_requests_total", result="ok") == 0
        assert c.metric("cachecar_materializer_records_rejected_total", topic=t) == 0
        assert served[0] == "/schemas/ids/7"
        answers.clear()  # from now on, a schema
        c.wait_ready(timeout=120)
        assert get(c, t, b"a") == {"n": 1}


def test_original_values_are_served_exactly_as_read_from_kafka_on_request(
        admin, bootstrap, cachecar_factory, registry):
    people = create_topic(admin, unique("reg-orig-avro"))
    ser = AvroSerializer(registry.client, json.dumps(AVRO_USER))
    user = {"name": "ada", "age": 36, "nick": None, "seen": 0, "avatar": b"\x00",
            "plan": "PRO", "tags": [], "limits": {}, "home": None}
    ada1, ada2 = encode(ser, people, user), encode(ser, people, dict(user, age=37))
    tag = unique("o").replace("-", "")
    User, _ = protobuf_classes(tag)
    members = create_topic(admin, unique("reg-orig-proto"))
    pb_id = struct.unpack(">i", encode(ProtobufSerializer(
        User, registry.client, {"use.deprecated.format": False}), members, User())[1:5])[0]
    # Field 2 before field 1: decodes like any other record, but encoding its JSON again
    # would not give these bytes back.
    odd = wire(pb_id, b"\x00" + User(user_id=7).SerializeToString() +
               User(name="ada").SerializeToString())
    dropped = create_topic(admin, unique("reg-orig-dropped"))
    plain = create_topic(admin, unique("orig-json"))
    shaped = create_topic(admin, unique("orig-transformed"))
    produce(bootstrap, people, [(b"ada", ada1)])
    produce(bootstrap, members, [(b"ada", odd)])
    produce(bootstrap, dropped, [(b"ada", ada1)])
    produce(bootstrap, plain, [(b"k", b'{ "spaced" : 1 }')])
    produce(bootstrap, shaped, [(b"k", b'{"a": 1}')])
    topics = [{"name": people, "value_format": "registry", "keep_original": True},
              {"name": members, "value_format": "registry", "keep_original": True},
              {"name": dropped, "value_format": "registry"},  # not kept by default
              {"name": plain}, {"name": shaped, "transform": "{b: .a}"}]
    c = cachecar_factory(topics, extra=registry_extra(registry)).start()
    c.wait_ready()

    def original_get(topic, key):
        r = c.stub.Get(pb.GetRequest(topic=topic, key=key, original_value=True), timeout=5)
        assert r.found
        return r.entry.value

    # The decoded JSON by default, the record's bytes on request (with its schema id).
    assert get(c, people, b"ada")["age"] == 36
    assert original_get(people, b"ada") == ada1
    assert get(c, members, b"ada") == {"name": "ada", "userId": "7"}
    assert original_get(members, b"ada") == odd
    assert original_get(plain, b"k") == b'{ "spaced" : 1 }'
    r = c.stub.BatchGet(pb.BatchGetRequest(topic=members, keys=[b"ada", b"nobody"],
                                           original_value=True), timeout=5)
    assert [(x.found, x.entry.value) for x in r.results] == [(True, odd), (False, b"")]
    r = c.stub.List(pb.ListRequest(topic=people, original_value=True), timeout=5)
    assert [(e.key, e.value, e.schema_id) for e in r.entries] == [
        (b"ada", ada1, struct.unpack(">i", ada1[1:5])[0])]

    # A watch: its snapshot, then a change with the entry it replaced, both as read.
    w, json_w = Watcher(c.address), Watcher(c.address)
    try:
        w.create(topic=people, snapshot=True, prev_entry=True, original_value=True)
        json_w.create(topic=people, prev_entry=True)
        assert w.next().HasField("created") and json_w.next().HasField("created")
        assert [e.value for e in w.next().snapshot.entries] == [ada1]
        assert w.next().HasField("snapshot_end")
        produce(bootstrap, people, [(b"ada", ada2)])
        ev = w.next().events.events[0]
        assert (ev.entry.value, ev.prev_entry.value) == (ada2, ada1)
        ev = json_w.next().events.events[0]
        assert json.loads(ev.entry.value)["age"] == 37
        assert json.loads(ev.prev_entry.value)["age"] == 36
    finally:
        w.close()
        json_w.close()

    # The Python client asks the same way.
    from cachecar import Client
    client = Client(c.address)
    try:
        assert client.get(members, b"ada", original_value=True).entry.value == odd
        assert [e.value for e in client.list(people, original_value=True)] == [ada2]
        watch = client.watch(people, prefix=b"", snapshot=True, original_value=True)
        try:
            assert next(iter(watch)).value == ada2
        finally:
            watch.close()
    finally:
        client.close()
    # And the TypeScript client.
    ts = ("const { Client } = require(process.argv[1]);"
          "(async () => { const c = new Client({ address: process.argv[2] });"
          " const r = await c.get(process.argv[3], 'ada', { originalValue: true });"
          " const l = []; for await (const e of c.list(process.argv[3], '', { originalValue: true }))"
          " l.push(e.value.toString('hex'));"
          " console.log(r.entry.value.toString('hex'), l.join(',')); process.exit(0); })();")
    out = subprocess.run(["node", "-e", ts, os.path.join(SOURCE_DIR,
                          "client/typescript/dist/src/index.js"), c.address, members],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [odd.hex(), odd.hex()]

    # And cachecarctl.
    out = subprocess.run([CACHECARCTL_BIN, "-a", c.address, "--original", "-o", "raw", "get",
                          members, "ada"], capture_output=True, timeout=30)
    assert out.returncode == 0 and out.stdout == odd, out
    out = subprocess.run([CACHECARCTL_BIN, "-a", c.address, "--original", "-o", "json", "list",
                          people], capture_output=True, timeout=30)
    assert out.returncode == 0, out
    assert [e["value"] for e in json.loads(out.stdout)] == [
        {"base64": base64.b64encode(ada2).decode()}]

    # Topics that do not have them say why, and how to read instead.
    for topic, why in ((dropped, "set keep_original: true"), (shaped, "transformed")):
        for call, req in ((c.stub.Get, pb.GetRequest(topic=topic, key=b"k", original_value=True)),
                          (c.stub.List, pb.ListRequest(topic=topic, original_value=True))):
            e = call_error(call, req)
            assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, (topic, e)
            assert rich_status(e)[0].reason == "ORIGINAL_NOT_KEPT"
            assert why in e.details()
        w = Watcher(c.address)
        try:
            w.create(topic=topic, original_value=True)
            canceled = w.next().canceled
            assert canceled.reason == pb.WatchCanceled.INVALID_REQUEST
            assert "original_value" in canceled.message and why in canceled.message
        finally:
            w.close()

    # Keeping them from now on rebuilds the topic from Kafka, so every entry has its own.
    c.stop()
    topics[2]["keep_original"] = True
    c = cachecar_factory(topics, store_dir=c.store_dir, extra=registry_extra(registry)).start()
    c.wait_ready()
    assert original_get(dropped, b"ada") == ada1
    assert c.metric("cachecar_materializer_topic_rebuilds_total", topic=dropped,
                    reason="definition_changed") == 1
