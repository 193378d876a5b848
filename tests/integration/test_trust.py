"""Trust under real operations, against the real broker: what an operator does to a topic
while cachecar runs must never leave a copy that says ready but is stale."""
import json

import grpc
from confluent_kafka.admin import NewPartitions

from conftest import create_topic, deadline_wait, end_offsets, pb, produce, unique
from test_bad_input import call_error


def test_partitions_added_to_a_running_topic_are_read_and_counted(admin, bootstrap,
                                                                  cachecar_factory):
    topic = create_topic(admin, unique("grow"), partitions=2)
    produce(bootstrap, topic, [(b"old0", b'{"p":0}')], partition=0)
    produce(bootstrap, topic, [(b"old1", b'{"p":1}')], partition=1)
    c = cachecar_factory([{"name": topic, "read_only": False}],
                         extra={"kafka": {"metadata_refresh_ms": 500}}).start()
    c.wait_ready()

    # kafka-topics --alter --partitions 4, by an independent admin client.
    admin.create_partitions([NewPartitions(topic, 4)])[topic].result(timeout=30)
    deadline_wait(lambda: len(admin.list_topics(topic, timeout=5).topics[topic].partitions) == 4,
                  timeout=30, what="4 partitions in the metadata")
    produce(bootstrap, topic, [(b"new2", b'{"p":2}')], partition=2)
    produce(bootstrap, topic, [(b"new3", b'{"p":3}')], partition=3)

    def applied():
        r = c.stub.BatchGet(pb.BatchGetRequest(topic=topic, keys=[b"new2", b"new3"]), timeout=5)
        return all(x.found for x in r.results)

    deadline_wait(applied, timeout=60, what="records on the added partitions applied")
    c.wait_ready(timeout=60)
    s = c.status()
    parts = {p.partition: p for p in s.topics[0].partitions}
    assert sorted(parts) == [0, 1, 2, 3]
    ends = end_offsets(bootstrap, topic, 4)
    for p in range(4):
        assert parts[p].applied_offset == ends[p], (p, parts[p], ends)
        assert parts[p].lag == 0
    assert c.stub.Get(pb.GetRequest(topic=topic, key=b"old1"), timeout=5).found

    # A Put whose key the producer now maps to an added partition is applied too.
    written = {}
    for i in range(40):
        key = f"k{i}".encode()
        r = c.stub.Put(pb.PutRequest(topic=topic, key=key, value=json.dumps({"i": i}).encode()),
                       timeout=30)
        written[key] = r.partition
    assert set(written.values()) & {2, 3}, f"no Put reached an added partition: {written}"
    for key in written:
        assert c.stub.Get(pb.GetRequest(topic=topic, key=key), timeout=5).found, key


def test_a_second_signal_during_shutdown_exits_at_once(admin, cachecar_factory):
    topic = create_topic(admin, unique("sig"))
    c = cachecar_factory([{"name": topic}]).start()
    c.wait_ready()
    # A read waiting for a revision the store will not reach keeps the orderly shutdown
    # waiting for its grace period.
    waiting = c.stub.Get.future(pb.GetRequest(topic=topic, key=b"k", min_revision=10**9),
                                timeout=60)
    deadline_wait(lambda: c.metric("cachecar_rpc_waiting_calls") == 1, timeout=30,
                  what="the read to be waiting in the sidecar")
    assert not waiting.done()
    c.proc.send_signal(15)
    c.wait_log("shutting down", timeout=30)
    c.proc.send_signal(15)
    assert c.proc.wait(timeout=30) == 128 + 15
    assert c.find_logs("second signal: exiting at once")


class _LateBroker:
    """A bootstrap address that refuses connections until open(), then forwards to the
    real broker. The broker advertises its own address, so once the client has read the
    metadata through it, it talks to the broker directly."""

    def __init__(self, bootstrap):
        import socket
        host, port = bootstrap.split(",")[0].rsplit(":", 1)
        self._target = (host, int(port))
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        self.address = "127.0.0.1:%d" % self._sock.getsockname()[1]

    def open(self):
        import socket
        import threading

        def pump(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        def serve():
            while True:
                try:
                    client, _ = self._sock.accept()
                except OSError:
                    return
                upstream = socket.create_connection(self._target)
                threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
                threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

        self._sock.listen(16)
        threading.Thread(target=serve, daemon=True).start()

    def close(self):
        self._sock.close()


def _caught_up_then_stopped(admin, bootstrap, cachecar_factory, readiness):
    topic = create_topic(admin, unique("outage"), partitions=2)
    produce(bootstrap, topic, [(b"a", b'{"v":1}'), (b"b", b'{"v":2}')])
    c = cachecar_factory([{"name": topic}],
                         extra={"readiness": readiness})
    c.start()
    c.wait_ready()
    assert c.stub.Get(pb.GetRequest(topic=topic, key=b"a"), timeout=5).found
    c.stop()
    return topic, c


def test_restart_during_a_broker_outage_serves_the_stored_state_marked_stale(
        admin, bootstrap, cachecar_factory):
    topic, c = _caught_up_then_stopped(admin, bootstrap, cachecar_factory,
                                       {"broker_outage_at_start": "serve_stored",
                                        "broker_outage_grace_ms": 500})
    late = _LateBroker(bootstrap)
    try:
        c.bootstrap = late.address
        c.start()
        c.wait_ready(timeout=60)
        r = c.stub.Get(pb.GetRequest(topic=topic, key=b"a"), timeout=5)
        assert r.found and json.loads(r.entry.value) == {"v": 1}
        assert r.HasField("stale"), r
        assert r.stale.caught_up_at.seconds > 0
        assert "unreachable" in r.stale.reason
        b = c.stub.BatchGet(pb.BatchGetRequest(topic=topic, keys=[b"a", b"b"]), timeout=5)
        assert b.HasField("stale") and all(x.found for x in b.results)
        lst = c.stub.List(pb.ListRequest(topic=topic), timeout=5)
        assert lst.HasField("stale") and len(lst.entries) == 2
        s = c.status()
        assert s.ready and s.topics[0].HasField("stale")
        assert c.metric("cachecar_topic_serving_stored_state", topic=topic) == 1
        ctl = c.ctl("status", "-o", "json")
        assert ctl.returncode == 0, ctl
        assert "unreachable" in json.loads(ctl.stdout)["topics"][0]["stale"]["reason"]

        # The broker comes back: the copy catches up and is no longer stale.
        produce(bootstrap, topic, [(b"c", b'{"v":3}')])
        late.open()
        deadline_wait(lambda: c.stub.Get(pb.GetRequest(topic=topic, key=b"c"), timeout=5).found,
                      timeout=60, what="the record produced during the outage applied")
        deadline_wait(lambda: not c.stub.Get(pb.GetRequest(topic=topic, key=b"a"),
                                             timeout=5).HasField("stale"),
                      timeout=60, what="reads no longer stale")
        assert c.status().ready
        assert c.metric("cachecar_topic_serving_stored_state", topic=topic) == 0
    finally:
        late.close()


def test_restart_during_a_broker_outage_waits_when_so_configured(admin, bootstrap,
                                                                 cachecar_factory):
    topic, c = _caught_up_then_stopped(admin, bootstrap, cachecar_factory,
                                       {"broker_outage_at_start": "wait",
                                        "broker_outage_grace_ms": 200})
    late = _LateBroker(bootstrap)
    try:
        c.bootstrap = late.address
        c.start()
        c.wait_log("kafka unreachable at start; not ready until it answers", timeout=30)
        assert not c.status().ready
        assert "cannot read its partitions" in c.status().not_ready_reason
        err = call_error(c.stub.Get, pb.GetRequest(topic=topic, key=b"a"))
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        late.open()
        c.wait_ready(timeout=60)
        r = c.stub.Get(pb.GetRequest(topic=topic, key=b"a"), timeout=5)
        assert r.found and not r.HasField("stale")
    finally:
        late.close()


def test_a_store_never_caught_up_is_not_served_during_an_outage(admin, bootstrap,
                                                                cachecar_factory):
    # A fresh store (never caught up) has nothing trustworthy to serve: it waits.
    topic = create_topic(admin, unique("never"))
    late = _LateBroker(bootstrap)
    try:
        c = cachecar_factory([{"name": topic}],
                             extra={"readiness": {"broker_outage_at_start": "serve_stored",
                                                  "broker_outage_grace_ms": 200}})
        c.bootstrap = late.address
        c.start()
        c.wait_log("kafka unreachable at start; no stored state caught up with Kafka to serve",
                   timeout=30)
        assert not c.status().ready
    finally:
        late.close()


def test_an_optional_topic_does_not_take_the_pod_out_of_service(admin, bootstrap,
                                                                cachecar_factory):
    present = create_topic(admin, unique("present"))
    missing = unique("missing")  # never created
    produce(bootstrap, present, [(b"k", b'{"v":1}')])
    c = cachecar_factory([{"name": present},
                          {"name": missing, "readiness": "optional"}]).start()
    c.wait_ready(timeout=60)
    assert c.http("/readyz")[0] == 200
    s = c.status()
    assert s.ready and s.not_ready_reason == ""
    by_name = {t.topic: t for t in s.topics}
    assert by_name[present].required and by_name[present].ready
    assert not by_name[missing].required and not by_name[missing].ready
    assert "does not exist in Kafka" in by_name[missing].not_ready_reason
    err = call_error(c.stub.Get, pb.GetRequest(topic=missing, key=b"k"))
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert c.stub.Get(pb.GetRequest(topic=present, key=b"k"), timeout=5).found


def test_a_sidecar_whose_topics_are_all_optional_says_serving_everywhere(cachecar_factory):
    """Ready from the start (no required topic to wait for): gRPC health, /readyz and
    GetStatus agree, although the one topic does not exist."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    missing = unique("missing")  # never created
    c = cachecar_factory([{"name": missing, "readiness": "optional"}]).start()
    c.wait_ready(timeout=60)
    assert c.http("/readyz")[0] == 200
    stub = health_pb2_grpc.HealthStub(c.channel)
    deadline_wait(lambda: "does not exist" in c.status().topics[0].not_ready_reason,
                  timeout=60, what="the missing topic named")
    got = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
    assert got == health_pb2.HealthCheckResponse.SERVING, got
    got = stub.Check(health_pb2.HealthCheckRequest(service=f"topic/{missing}"), timeout=5).status
    assert got == health_pb2.HealthCheckResponse.NOT_SERVING, got


def test_readiness_names_every_required_topic_that_is_not_ready(admin, bootstrap,
                                                                cachecar_factory):
    present = create_topic(admin, unique("present"))
    missing_a, missing_b = unique("missing-a"), unique("missing-b")
    c = cachecar_factory([{"name": present}, {"name": missing_a}, {"name": missing_b}]).start()
    deadline_wait(lambda: all(f"topic {t} does not exist in Kafka" in c.status().not_ready_reason
                              for t in (missing_a, missing_b)),
                  timeout=60, what="both missing topics named as missing")
    reason = c.status().not_ready_reason
    assert f"topic {missing_a} does not exist in Kafka" in reason, reason
    assert f"topic {missing_b} does not exist in Kafka" in reason, reason
    code, body = c.http("/readyz")
    assert code == 503 and missing_a in body and missing_b in body, body


def test_a_rebuild_tells_its_watchers_once_and_spares_the_other_topics(admin, bootstrap,
                                                                       cachecar_factory):
    from test_watch import Watcher
    t = create_topic(admin, unique("rebuilt"))
    other = create_topic(admin, unique("spared"))
    produce(bootstrap, t, [(f"k{i}".encode(), b"{}") for i in range(300)])
    produce(bootstrap, other, [(b"x", b'{"v":1}')])
    # A history window smaller than the topic: a rebuild written as one delete per key
    # would push every live watch out of it.
    c = cachecar_factory([{"name": t}, {"name": other}],
                         extra={"watch": {"history_events": 100},
                                "materializer": {"batch_max_records": 100}}).start()
    c.wait_ready()
    w = Watcher(c.address)
    w.create(watch_id=1, topic=t, key=b"")
    w.create(watch_id=2, topic=other, key=b"x", prefix=False)
    assert w.next().HasField("created") and w.next().HasField("created")
    admin.delete_topics([t])[t].result(30)
    r = w.next(timeout=60)
    assert r.watch_id == 1 and r.HasField("canceled"), r
    assert r.canceled.reason == pb.WatchCanceled.TOPIC_RESET, r
    assert "take a new snapshot" in r.canceled.message
    # The other topic's watch goes on.
    produce(bootstrap, other, [(b"x", b'{"v":2}')])
    r = w.next(timeout=60)
    assert r.watch_id == 2 and r.HasField("events"), r
    assert json.loads(r.events.events[0].entry.value) == {"v": 2}
    assert c.metric("cachecar_watch_canceled_total", reason="HISTORY_COMPACTED") == 0
