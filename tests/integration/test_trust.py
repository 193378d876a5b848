"""Trust under real operations, against the real broker: what an operator does to a topic
while cachecar runs must never leave a copy that says ready but is stale."""
import json

from confluent_kafka.admin import NewPartitions

from conftest import create_topic, deadline_wait, end_offsets, pb, produce, unique


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
