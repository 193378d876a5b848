"""Readiness with transaction markers, aborted records and empty topics."""
from confluent_kafka import Producer

from conftest import create_topic, pb, produce, unique


def txn_producer(bootstrap):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": unique("txn"),
                  "partitioner": "murmur2_random"})
    p.init_transactions(30)
    return p


def test_topic_ending_in_commit_and_abort_markers_becomes_ready(admin, bootstrap, cachecar_factory):
    committed = create_topic(admin, unique("txn-commit"), partitions=2)
    aborted = create_topic(admin, unique("txn-abort"), partitions=2)
    empty = create_topic(admin, unique("empty"), partitions=3)

    p = txn_producer(bootstrap)
    p.begin_transaction()
    for i in range(10):
        p.produce(committed, key=f"k{i}".encode(), value=b'{"state":"committed"}')
    p.commit_transaction(30)
    # aborted: committed values first, then an aborted overwrite and aborted new keys; the
    # partitions end in abort markers.
    p.begin_transaction()
    for i in range(5):
        p.produce(aborted, key=f"k{i}".encode(), value=b'{"state":"committed"}')
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(10):
        p.produce(aborted, key=f"k{i}".encode(), value=b'{"state":"aborted"}')
    p.abort_transaction(30)

    c = cachecar_factory([{"name": committed}, {"name": aborted}, {"name": empty}]).start()
    c.wait_ready(timeout=60)

    got = c.list_all(committed)
    assert len(got) == 10 and all(v == b'{"state":"committed"}' for v in got.values())
    got = c.list_all(aborted)
    assert got == {f"k{i}".encode(): b'{"state":"committed"}' for i in range(5)}, \
        "records of an aborted transaction must never be served"
    assert c.list_all(empty) == {}
    st = {t.topic: t for t in c.status().topics}
    # Positions moved past the markers: applied equals the end offset, not last record + 1.
    for part in st[aborted].partitions:
        assert part.applied_offset == part.start_end_offset
    assert all(p.applied_offset == 0 and p.ready for p in st[empty].partitions)


def test_open_transaction_does_not_leak_and_later_commit_is_served(admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("txn-open"))
    produce(bootstrap, t, [(b"base", b"1")])
    p = txn_producer(bootstrap)
    p.begin_transaction()
    p.produce(t, key=b"pending", value=b"2")
    p.flush(30)
    c = cachecar_factory([{"name": t}]).start()
    # The last stable offset stops before the open transaction: ready, without it.
    c.wait_ready(timeout=60)
    assert c.stub.Get(pb.GetRequest(topic=t, key=b"base"), timeout=5).found
    assert not c.stub.Get(pb.GetRequest(topic=t, key=b"pending"), timeout=5).found
    p.commit_transaction(30)
    from conftest import deadline_wait
    deadline_wait(lambda: c.stub.Get(pb.GetRequest(topic=t, key=b"pending"), timeout=5).found,
                  timeout=30, what="committed record")
