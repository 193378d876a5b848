"""Bootstrap from a peer's snapshot (README "Bootstrap from a peer"), against the real
broker with several real cachecar processes. Final states are compared with an independent
consumer (confluent-kafka) reading the topic from its start."""
import json
import os
import threading

import grpc
import pytest

from conftest import (CACHECARCTL_BIN, create_topic, deadline_wait, end_offsets, last_values,
                      produce, producer, unique)
from cachecar.v1 import snapshot_pb2, snapshot_pb2_grpc

PARTITIONS = 3
RECORDS = 3000


def token_file(tmp_path, token="peer-secret-1"):
    p = tmp_path / "peer-token"
    p.write_text(token + "\n")
    return str(p)


def peer_config(token, listen=True, peers=None, rate=None, extra_bootstrap=None):
    cfg = {"peers": {"token_file": token}}
    if listen:
        cfg["peers"]["listen"] = "127.0.0.1:0"
    if rate:
        cfg["peers"]["max_bytes_per_second"] = rate
    if peers is not None:
        cfg["bootstrap"] = {"peers": peers, "connect_timeout_ms": 2000}
        cfg["bootstrap"].update(extra_bootstrap or {})
    return cfg


def filled(bootstrap_addr, admin, records=RECORDS):
    """A topic with records, tombstones and overwrites, by an independent producer."""
    topic = unique("boot")
    create_topic(admin, topic, partitions=PARTITIONS)
    recs = [(f"k{i % (records // 2)}", json.dumps({"i": i, "pad": "x" * 200})) for i in range(records)]
    recs += [(f"k{i}", None) for i in range(0, records // 2, 7)]
    produce(bootstrap_addr, topic, recs)
    return topic


def caught_up_to_end(c, bootstrap_addr, topic):
    ends = end_offsets(bootstrap_addr, topic, PARTITIONS)

    def done():
        st = c.status()
        for t in st.topics:
            if t.topic != topic:
                continue
            got = {p.partition: p.applied_offset for p in t.partitions}
            return all(got.get(p, -1) >= ends[p] for p in range(PARTITIONS))
        return False
    deadline_wait(done, 120, what="the sidecar to apply the whole topic")


def same_as_topic(c, bootstrap_addr, topic):
    caught_up_to_end(c, bootstrap_addr, topic)
    want = {k: v for k, v in last_values(bootstrap_addr, topic, PARTITIONS).items()}
    got = c.list_all(topic)
    assert got == want


def start_peer(cachecar_factory, topic, cfg):
    c = cachecar_factory([{"name": topic}], extra=cfg, name="peer").start()
    assert c.peer_port > 0 or "listen" not in cfg.get("peers", {})
    c.wait_ready()
    return c


def test_a_new_sidecar_bootstraps_from_a_peer_while_writes_continue(
        cachecar_factory, bootstrap, admin, tmp_path):
    topic = filled(bootstrap, admin)
    tok = token_file(tmp_path)
    a = start_peer(cachecar_factory, topic, peer_config(tok))
    b = start_peer(cachecar_factory, topic, peer_config(tok))

    stop = threading.Event()
    written = []

    def writer():
        p = producer(bootstrap)
        i = 0
        while not stop.is_set():
            p.produce(topic, key=f"live{i % 300}", value=json.dumps({"live": i}))
            p.poll(0)
            i += 1
            if i % 50 == 0:
                p.flush(10)
        p.flush(30)
        written.append(i)

    t = threading.Thread(target=writer)
    t.start()
    try:
        c = cachecar_factory([{"name": topic}], name="new", extra=peer_config(
            tok, listen=False,
            peers=[f"127.0.0.1:{a.peer_port}", f"localhost:{b.peer_port}"])).start()
        c.wait_ready()
    finally:
        stop.set()
        t.join()
    assert written and written[0] > 0
    line = c.wait_log("store filled from a snapshot")
    assert line["source"] == "peer"
    assert line["bytes"] > 0
    assert c.metric("cachecar_bootstrap_source", source="peer") == 1
    assert c.metric("cachecar_bootstrap_attempts_total", source="peer", result="installed") == 1
    served = a.metric("cachecar_snapshot_transfers_total", result="complete") + \
        b.metric("cachecar_snapshot_transfers_total", result="complete")
    assert served == 1
    # Positions came with the data: Kafka was read from them, not from the start.
    assert c.metric("cachecar_materializer_records_consumed_total", topic=topic) < RECORDS
    same_as_topic(c, bootstrap, topic)
    # The new store has an identity of its own.
    assert c.status().store_id not in (a.status().store_id, b.status().store_id)


def test_a_peer_killed_mid_transfer_is_replaced_by_the_next(
        cachecar_factory, bootstrap, admin, tmp_path):
    topic = filled(bootstrap, admin)
    tok = token_file(tmp_path)
    slow = start_peer(cachecar_factory, topic, peer_config(tok, rate=65536))
    good = start_peer(cachecar_factory, topic, peer_config(tok))
    c = cachecar_factory([{"name": topic}], name="new", extra=peer_config(
        tok, listen=False,
        peers=[f"127.0.0.1:{slow.peer_port}", f"127.0.0.1:{good.peer_port}"]))
    c.start(wait_listening=False)
    deadline_wait(lambda: slow.metric("cachecar_snapshot_transfers_active") == 1, 60,
                  what="the slow peer to be sending")
    slow.kill9()
    c.wait_log("listening", timeout=120)
    line = c.wait_log("store filled from a snapshot")
    assert line["from"] == f"ipv4:127.0.0.1:{good.peer_port}"
    failed = c.find_logs("bootstrap attempt failed; trying the next source")
    assert failed and failed[0]["from"] == f"ipv4:127.0.0.1:{slow.peer_port}"
    _attach(c)
    c.wait_ready()
    assert c.metric("cachecar_bootstrap_attempts_total", source="peer", result="installed") == 1
    same_as_topic(c, bootstrap, topic)


def _attach(c):
    """Connects the test's client to a process started with wait_listening=False."""
    line = c.wait_log("listening")
    c.grpc_port, c.http_port = line["grpc_port"], line["http_port"]
    c.address = f"127.0.0.1:{c.grpc_port}"
    from conftest import cache_pb2_grpc
    c.channel = grpc.insecure_channel(c.address)
    c.stub = cache_pb2_grpc.CacheServiceStub(c.channel)


def test_incompatible_unready_or_refusing_peers_leave_kafka_replay(
        cachecar_factory, bootstrap, admin, tmp_path):
    topic = filled(bootstrap, admin)
    tok = token_file(tmp_path)
    # A peer that stores the topic as bytes: its entries are not what a json topic holds.
    bytes_peer = cachecar_factory([{"name": topic, "value_format": "bytes"}],
                                  extra=peer_config(tok), name="peer").start()
    bytes_peer.wait_ready()
    # A peer with another token.
    other = start_peer(cachecar_factory, topic, peer_config(token_file(tmp_path / "..", "other")))
    c = cachecar_factory([{"name": topic}], name="new", extra=peer_config(
        tok, listen=False,
        peers=[f"127.0.0.1:{bytes_peer.peer_port}", f"127.0.0.1:{other.peer_port}",
               "127.0.0.1:1", "no-such-peer.invalid:50052"])).start()
    c.wait_ready()
    results = {(l["from"], l["result"]) for l in
               c.find_logs("bootstrap attempt failed; trying the next source")}
    assert (f"ipv4:127.0.0.1:{bytes_peer.peer_port}", "incompatible") in results
    assert (f"ipv4:127.0.0.1:{other.peer_port}", "failed") in results
    assert ("ipv4:127.0.0.1:1", "unreachable") in results
    assert ("no-such-peer.invalid:50052", "unreachable") in results
    assert c.metric("cachecar_bootstrap_source", source="kafka") == 1
    assert c.find_logs("no snapshot could be had; replaying the topics from Kafka")
    same_as_topic(c, bootstrap, topic)
    assert other.metric("cachecar_snapshot_transfers_total", result="complete") == 0


def test_the_peer_port_serves_snapshots_only_and_only_with_the_token(
        cachecar_factory, bootstrap, admin, tmp_path):
    topic = filled(bootstrap, admin, records=100)
    tok = token_file(tmp_path)
    a = start_peer(cachecar_factory, topic, peer_config(tok))
    ch = grpc.insecure_channel(f"127.0.0.1:{a.peer_port}")
    snap = snapshot_pb2_grpc.SnapshotServiceStub(ch)
    with pytest.raises(grpc.RpcError) as e:
        snap.DescribeSnapshot(snapshot_pb2.DescribeSnapshotRequest(), timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as e:
        list(snap.StreamSnapshot(snapshot_pb2.StreamSnapshotRequest(), timeout=5,
                                 metadata=[("authorization", "Bearer wrong")]))
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    d = snap.DescribeSnapshot(snapshot_pb2.DescribeSnapshotRequest(), timeout=5,
                              metadata=[("authorization", "Bearer peer-secret-1")])
    assert d.ready and [t.name for t in d.topics] == [topic]
    # Reads are not served on the peer port.
    from conftest import cache_pb2, cache_pb2_grpc
    with pytest.raises(grpc.RpcError) as e:
        cache_pb2_grpc.CacheServiceStub(ch).Get(cache_pb2.GetRequest(topic=topic, key=b"k1"),
                                                timeout=5)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert a.metric("cachecar_snapshot_transfers_total", result="unauthenticated") == 1


def test_snapshot_file_saves_and_seeds_and_a_corrupt_one_is_refused(
        cachecar_factory, bootstrap, admin, tmp_path):
    topic = filled(bootstrap, admin)
    a = cachecar_factory([{"name": topic}], name="peer").start()
    a.wait_ready()
    good = str(tmp_path / "cache.snap")
    r = a.ctl("-o", "json", "snapshot", "save", good)
    assert r.returncode == 0, r.stderr
    saved = json.loads(r.stdout)
    assert saved["revision"] > 0 and saved["bytes"] > 0 and saved["topics"] == 1
    assert not os.path.exists(good + ".partial")

    corrupt = str(tmp_path / "corrupt.snap")
    data = bytearray(open(good, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(corrupt, "wb").write(bytes(data))

    # The flag, with a corrupt file: refused, replayed from Kafka, nothing half-installed.
    c = cachecar_factory([{"name": topic}], name="seeded")
    c.start(args=["--bootstrap-from", corrupt])
    c.wait_ready()
    failed = c.find_logs("bootstrap attempt failed; trying the next source")
    assert failed and failed[0]["result"] == "corrupt", failed
    assert c.metric("cachecar_bootstrap_source", source="kafka") == 1
    same_as_topic(c, bootstrap, topic)

    # The good file: installed; Kafka is read from its positions on.
    d = cachecar_factory([{"name": topic}], name="seeded")
    d.start(args=["--bootstrap-from", good])
    d.wait_ready()
    line = d.wait_log("store filled from a snapshot")
    assert line["source"] == "file" and line["revision"] == saved["revision"]
    assert d.metric("cachecar_materializer_records_consumed_total", topic=topic) == 0
    same_as_topic(d, bootstrap, topic)
    # A restart with the flag still set leaves the store alone.
    d.stop()
    d.start(args=["--bootstrap-from", good])
    d.wait_ready()
    assert d.metric("cachecar_bootstrap_source", source="existing") == 1


def bootstrapping_from_a_slow_peer(cachecar_factory, bootstrap, admin, tmp_path):
    """A peer throttled to 64 KiB/s, and a new sidecar in the middle of its transfer."""
    topic = filled(bootstrap, admin)
    tok = token_file(tmp_path)
    slow = start_peer(cachecar_factory, topic, peer_config(tok, rate=65536))
    c = cachecar_factory([{"name": topic}], name="new", extra=peer_config(
        tok, listen=False, peers=[f"127.0.0.1:{slow.peer_port}"]))
    c.start(wait_listening=False)
    deadline_wait(lambda: slow.metric("cachecar_snapshot_transfers_active") == 1, 60,
                  what="the peer to be sending")
    return topic, slow, c


def test_kill9_during_bootstrap_leaves_no_half_installed_store(
        cachecar_factory, bootstrap, admin, tmp_path):
    topic, slow, c = bootstrapping_from_a_slow_peer(cachecar_factory, bootstrap, admin,
                                                    tmp_path)
    deadline_wait(lambda: any(n.startswith("bootstrap-") for n in os.listdir(c.store_dir)), 30,
                  what="the transfer's directory")
    c.kill9()
    assert not os.path.exists(os.path.join(c.store_dir, "data.mdb"))
    # The peer sees the transfer end.
    deadline_wait(lambda: slow.metric("cachecar_snapshot_transfers_active") == 0, 60,
                  what="the peer to notice")
    # Restarted without peers: the leftovers are removed and the topic replayed.
    with open(c.config_path) as f:
        cfg = json.load(f)
    cfg["bootstrap"]["peers"] = []
    with open(c.config_path, "w") as f:
        json.dump(cfg, f)
    c.start()
    c.wait_ready()
    assert not any(n.startswith("bootstrap-") for n in os.listdir(c.store_dir))
    assert c.metric("cachecar_bootstrap_source", source="kafka") == 1
    same_as_topic(c, bootstrap, topic)


def delete_before(admin, topic, offset):
    """Moves partition 0's log start to `offset`, as retention would (DeleteRecords)."""
    from confluent_kafka import TopicPartition
    for f in admin.delete_records([TopicPartition(topic, 0, offset)]).values():
        f.result(timeout=30)


def test_a_peer_bootstrap_keeps_records_retention_has_deleted(
        cachecar_factory, bootstrap, admin, tmp_path):
    topic = unique("retained")
    create_topic(admin, topic, partitions=1)
    produce(bootstrap, topic, [(f"old{i}", json.dumps({"v": i})) for i in range(200)])
    want = last_values(bootstrap, topic, 1)
    tok = token_file(tmp_path)
    a = cachecar_factory([{"name": topic}], extra=peer_config(tok), name="peer").start()
    a.wait_ready()
    delete_before(admin, topic, end_offsets(bootstrap, topic, 1)[0])  # Kafka keeps none
    assert last_values(bootstrap, topic, 1) == {}
    c = cachecar_factory([{"name": topic}], name="new", extra=peer_config(
        tok, listen=False, peers=[f"127.0.0.1:{a.peer_port}"])).start()
    c.wait_ready()
    assert c.metric("cachecar_bootstrap_source", source="peer") == 1
    assert c.list_all(topic) == want


def test_retain_beyond_log_keeps_stored_keys_when_retention_passed_the_position(
        cachecar_factory, bootstrap, admin):
    topic = unique("retained")
    create_topic(admin, topic, partitions=1)
    produce(bootstrap, topic, [(f"old{i}", json.dumps({"v": i})) for i in range(100)])
    keep = cachecar_factory([{"name": topic, "retain_beyond_log": True}], name="keep").start()
    plain = cachecar_factory([{"name": topic}], name="plain").start()
    keep.wait_ready()
    plain.wait_ready()
    assert keep.stop() == 0 and plain.stop() == 0
    # While both are stopped: records they never read, then retention deletes all but the
    # last ten (old1's update among the deleted ones).
    produce(bootstrap, topic, [(f"gap{i}", json.dumps({"g": i})) for i in range(50)] +
            [("old1", json.dumps({"v": "updated"}))] +
            [(f"final{i}", json.dumps({"f": i})) for i in range(10)])
    end = end_offsets(bootstrap, topic, 1)[0]
    delete_before(admin, topic, end - 10)
    kafka_now = last_values(bootstrap, topic, 1)
    assert set(kafka_now) == {f"final{i}".encode() for i in range(10)}

    keep.start()
    keep.wait_ready()
    got = keep.list_all(topic)
    expected = {f"old{i}".encode(): json.dumps({"v": i}).encode() for i in range(100)}
    expected.update(kafka_now)
    assert got == expected  # the deleted records' own changes (gap*, old1's update) unseen
    assert keep.metric("cachecar_materializer_retention_skipped_records_total",
                       topic=topic) == end - 10 - 100
    assert keep.metric("cachecar_materializer_topic_rebuilds_total", topic=topic) == 0
    line = keep.wait_log("records were deleted from Kafka before this sidecar read them; "
                         "keeping the stored data (retain_beyond_log) and reading on from "
                         "the log start")
    assert line["position"] == 100 and line["log_start"] == end - 10

    # Without it: the topic is rebuilt to exactly what Kafka holds.
    plain.start()
    plain.wait_ready()
    assert plain.list_all(topic) == kafka_now
    assert plain.metric("cachecar_materializer_topic_rebuilds_total", topic=topic,
                        reason="offset_out_of_range") == 1


def test_sigterm_during_bootstrap_exits_at_once_leaving_no_store(
        cachecar_factory, bootstrap, admin, tmp_path):
    import signal
    import subprocess
    topic, slow, c = bootstrapping_from_a_slow_peer(cachecar_factory, bootstrap, admin,
                                                    tmp_path)
    c.proc.send_signal(signal.SIGTERM)
    # The transfer would take half a minute more: Kubernetes' grace period must not be
    # spent waiting for it.
    try:
        rc = c.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise AssertionError("cachecar did not exit on SIGTERM during its bootstrap")
    assert rc == 128 + signal.SIGTERM
    assert c.wait_log("signal while starting: exiting at once")
    assert not os.path.exists(os.path.join(c.store_dir, "data.mdb"))
