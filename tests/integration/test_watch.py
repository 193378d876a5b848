"""Watch against the real broker: resume without gap or duplicate, snapshot consistency,
restarts, a rebuilt store, the history window, slow consumers, many watchers, limits.

Writes come from an independent producer (confluent-kafka); what the watchers receive is
compared with the topic as an independent consumer reads it.
"""
import json
import queue
import random
import shutil
import subprocess
import threading

import grpc
from confluent_kafka import Consumer, TopicPartition

from conftest import (CACHECARCTL_BIN, cache_pb2_grpc, create_topic, deadline_wait, end_offsets,
                      last_values, pb, produce, unique)


class Watcher:
    """One Watch stream through grpcio: requests go in through a queue, responses are read
    by a background thread into another queue (unless read=False)."""

    def __init__(self, address, read=True):
        self.channel = grpc.insecure_channel(address)
        self.stub = cache_pb2_grpc.CacheServiceStub(self.channel)
        self.requests = queue.Queue()
        self.stream = self.stub.Watch(iter(self.requests.get, None))
        self.responses = queue.Queue()
        self.error = None
        if read:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            for r in self.stream:
                self.responses.put(r)
        except grpc.RpcError as e:
            self.error = e
        self.responses.put(None)

    def create(self, watch_id=1, **kw):
        kw.setdefault("prefix", True)
        self.requests.put(pb.WatchRequest(create=pb.WatchCreateRequest(watch_id=watch_id, **kw)))

    def cancel(self, watch_id):
        self.requests.put(pb.WatchRequest(cancel=pb.WatchCancelRequest(watch_id=watch_id)))

    def progress(self):
        self.requests.put(pb.WatchRequest(progress=pb.WatchProgressRequest()))

    def next(self, timeout=60):
        try:
            r = self.responses.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no watch response within {timeout}s")
        assert r is not None, f"the stream ended: {self.error}"
        return r

    def close(self):
        self.stream.cancel()
        self.requests.put(None)
        self.channel.close()


def applied_everything(c, topic, partitions, bootstrap):
    ends = end_offsets(bootstrap, topic, partitions)

    def done():
        st = [t for t in c.status().topics if t.topic == topic][0]
        return all(p.applied_offset >= ends[p.partition] for p in st.partitions)
    deadline_wait(done, 120, what="cachecar applied the whole topic")
    return c.status().store_revision


def topic_records(bootstrap, topic, partitions):
    """Every record, per partition in offset order: (partition, offset, key, value)."""
    ends = end_offsets(bootstrap, topic, partitions)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("verify"),
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, seen = [], [0] * partitions
    try:
        while any(seen[p] < ends[p] for p in range(partitions)):
            m = c.poll(10)
            assert m is not None, f"timed out reading {topic}"
            if m.error():
                continue
            out.append((m.partition(), m.offset(), m.key(), m.value()))
            seen[m.partition()] = m.offset() + 1
    finally:
        c.close()
    return out


def expected_events(records, after=None):
    """The changes the store makes from `records` (a tombstone for an absent key changes
    nothing), per key in offset order: {key: [(offset, value or None)]}. `after` filters to
    records after a (partition -> offset) position."""
    exists, out = set(), {}
    for part, off, key, value in sorted(records, key=lambda r: (r[0], r[1])):
        change = value is not None or key in exists
        if value is None:
            exists.discard(key)
        else:
            exists.add(key)
        if change and (after is None or off >= after.get(part, 0)):
            out.setdefault(key, []).append((off, value))
    return out


def events_by_key(events):
    out = {}
    for e in events:
        value = None if e.type == pb.WatchEvent.DELETE else e.entry.value
        out.setdefault(e.entry.key, []).append((e.entry.offset, value))
    return out


def background_writes(bootstrap, topic, n, keys=300, seed=1):
    """Produces n records on random keys (one in six a tombstone) from another thread."""
    def run():
        rng = random.Random(seed)
        recs = []
        for i in range(n):
            k = f"k{rng.randrange(keys)}".encode()
            v = None if rng.randrange(6) == 0 else json.dumps({"i": i}).encode()
            recs.append((k, v))
        # Several flushes, so the watcher sees writes arriving while it reconnects.
        for start in range(0, n, 500):
            produce(bootstrap, topic, recs[start:start + 500])
    t = threading.Thread(target=run)
    t.start()
    return t


def watching_a_new_topic(admin, cachecar_factory, name, partitions):
    """A new topic, a ready cachecar serving it, and a stream watching the whole topic
    from now: (topic, cachecar, watcher, created)."""
    t = create_topic(admin, unique(name), partitions=partitions)
    c = cachecar_factory([{"name": t}])
    c.start()
    c.wait_ready()
    w = Watcher(c.address)
    w.create(topic=t, key=b"")
    return t, c, w, w.next().created


def test_resuming_many_times_under_writes_misses_and_repeats_nothing(admin, bootstrap, cachecar_factory):
    t, c, w, created = watching_a_new_topic(admin, cachecar_factory, "watched", 4)
    store_id, last = created.store_id, created.revision
    w.close()

    writer = background_writes(bootstrap, t, 20000)
    rng = random.Random(5)
    events, reconnects = [], 0
    final = None
    while True:
        w = Watcher(c.address)
        w.create(topic=t, key=b"", resume_revision=last, store_id=store_id)
        first = w.next()
        assert first.HasField("created"), first
        budget = rng.randrange(1, 4)  # responses to read before disconnecting
        while budget > 0:
            if final is None and not writer.is_alive():
                final = applied_everything(c, t, 4, bootstrap)
            if final is not None and last >= final:
                break
            if final is not None:
                w.progress()
            r = w.next()
            assert not r.HasField("canceled"), r
            for e in r.events.events:
                assert e.revision > last, (e.revision, last)
                last = e.revision
                events.append(e)
            if r.HasField("progress"):
                last = max(last, r.progress.revision)
            budget -= 1
        w.close()
        reconnects += 1
        if final is not None and last >= final:
            break
    writer.join()
    want = expected_events(topic_records(bootstrap, t, 4))
    assert events_by_key(events) == want
    assert reconnects > 20


def test_snapshot_then_events_rebuild_the_exact_state_under_writes(admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("snap"), partitions=3)
    produce(bootstrap, t, [(f"k{i}".encode(), b'{"v":0}') for i in range(2000)])
    c = cachecar_factory([{"name": t}])
    c.start()
    c.wait_ready()
    writer = background_writes(bootstrap, t, 5000, keys=2500, seed=2)
    w = Watcher(c.address)
    w.create(topic=t, key=b"k", snapshot=True, prev_entry=True)
    state, snapshot_rev, order = {}, None, []
    writer.join()
    final = applied_everything(c, t, 3, bootstrap)
    last = 0
    while last < final:
        r = w.next()
        kind = r.WhichOneof("kind")
        order.append(kind)
        if kind == "snapshot":
            assert snapshot_rev is None
            for e in r.snapshot.entries:
                state[e.key] = e.value
        elif kind == "snapshot_end":
            snapshot_rev = last = r.snapshot_end.revision
        elif kind == "events":
            assert snapshot_rev is not None
            for e in r.events.events:
                assert e.revision > last
                last = e.revision
                if e.type == pb.WatchEvent.DELETE:
                    assert e.prev_entry.value == state.pop(e.entry.key)
                else:
                    if e.HasField("prev_entry"):
                        assert state[e.entry.key] == e.prev_entry.value
                    state[e.entry.key] = e.entry.value
        elif kind == "progress":
            last = max(last, r.progress.revision)
        if last < final and w.responses.empty():
            w.progress()
    w.close()
    assert order[0] == "created" and "snapshot_end" in order
    assert state == c.list_all(t, b"k")
    assert state == {k: v for k, v in last_values(bootstrap, t, 3).items()
                     if k.startswith(b"k")}


def test_resume_across_restart_and_rebuilt_store(admin, bootstrap, cachecar_factory):
    t, c, w, created = watching_a_new_topic(admin, cachecar_factory, "restart", 2)
    produce(bootstrap, t, [(f"a{i}".encode(), b'{"x":1}') for i in range(50)])
    got = []
    while len(got) < 50:
        got.extend(w.next().events.events)
    # Shutdown: the watch is told, with the revision to resume from.
    c.stop()
    cancel = w.next()
    assert cancel.canceled.reason == pb.WatchCanceled.SHUTTING_DOWN, cancel
    assert cancel.canceled.last_revision == got[-1].revision
    assert w.responses.get(timeout=30) is None
    assert w.error.code() == grpc.StatusCode.UNAVAILABLE
    w.close()
    mark = {p: o for p, o in enumerate(end_offsets(bootstrap, t, 2))}
    produce(bootstrap, t, [(f"b{i}".encode(), b'{"x":2}') for i in range(40)] +
            [(f"a{i}".encode(), None) for i in range(10)])
    c.start()
    c.wait_ready()
    final = applied_everything(c, t, 2, bootstrap)
    w = Watcher(c.address)
    w.create(topic=t, key=b"", resume_revision=cancel.canceled.last_revision,
             store_id=created.store_id)
    assert w.next().created.revision == cancel.canceled.last_revision
    missed = []
    while not missed or missed[-1].revision < final:
        missed.extend(w.next().events.events)
    w.close()
    assert events_by_key(missed) == expected_events(topic_records(bootstrap, t, 2), after=mark)
    assert len(missed) == 50

    # The store is lost (a new volume): the old revisions mean nothing there.
    c.stop()
    shutil.rmtree(c.store_dir)
    c.start()
    c.wait_ready()
    w = Watcher(c.address)
    w.create(topic=t, key=b"", resume_revision=5, store_id=created.store_id)
    r = w.next()
    assert r.canceled.reason == pb.WatchCanceled.STORE_CHANGED, r
    assert r.canceled.store_id != created.store_id
    w.close()


def test_a_resume_older_than_the_history_window_is_told_to_relist(admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("window"))
    c = cachecar_factory([{"name": t}], extra={"watch": {"history_events": 100},
                                               "materializer": {"batch_max_records": 100}})
    c.start()
    c.wait_ready()
    produce(bootstrap, t, [(f"k{i}".encode(), b"{}") for i in range(300)])
    final = applied_everything(c, t, 1, bootstrap)
    assert final == 300
    w = Watcher(c.address)
    w.create(topic=t, key=b"", resume_revision=1)
    r = w.next()
    assert r.canceled.reason == pb.WatchCanceled.HISTORY_COMPACTED, r
    assert r.canceled.compact_revision == 201
    w.create(watch_id=2, topic=t, key=b"", resume_revision=200)  # just inside the window
    assert w.next().created.revision == 200
    r = w.next()
    assert [e.revision for e in r.events.events] == list(range(201, 301))
    w.close()
    assert c.metric("cachecar_watch_history_oldest_revision") == 201


def test_a_slow_consumer_is_canceled_and_others_keep_up(admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("slow"), partitions=2)
    c = cachecar_factory([{"name": t}],
                         extra={"watch": {"buffer_events": 16, "slow_consumer_timeout_ms": 1000}})
    c.start()
    c.wait_ready()
    slow = Watcher(c.address, read=False)
    slow.create(topic=t, key=b"")
    fast = Watcher(c.address)
    fast.create(topic=t, key=b"")
    assert fast.next().HasField("created")
    big = b'{"pad":"' + b"x" * 4000 + b'"}'
    n = 20000  # ~80 MB: more than the HTTP/2 windows and socket buffers can hide
    produce(bootstrap, t, [(f"k{i}".encode(), big) for i in range(n)])
    # The fast client reads everything, although bursts overflow its 16-event buffer (it
    # then reads from the history log): never canceled.
    got = 0
    while got < n:
        r = fast.next()
        assert not r.HasField("canceled"), r
        got += len(r.events.events)
    assert c.metric("cachecar_watch_buffer_overflows_total") > 0
    deadline_wait(lambda: c.metric("cachecar_watch_canceled_total", reason="SLOW_CONSUMER") >= 1,
                  60, what="the slow consumer to be canceled")
    # The slow client finally reads: contiguous events, then the cancel naming where to
    # resume from.
    last = 0
    for r in slow.stream:
        if r.HasField("canceled"):
            assert r.canceled.reason == pb.WatchCanceled.SLOW_CONSUMER, r
            assert r.canceled.last_revision == last
            break
        for e in r.events.events:
            assert last == 0 or e.revision == last + 1
            last = e.revision
    assert 0 < last < n
    slow.close()
    fast.close()


def test_a_thousand_watchers_each_get_their_own_change(admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("many"), partitions=4)
    c = cachecar_factory([{"name": t}])
    c.start()
    c.wait_ready()
    streams = [Watcher(c.address) for _ in range(20)]
    for s, w in enumerate(streams):
        for j in range(50):
            w.create(watch_id=j, topic=t, key=f"k{s * 50 + j}".encode(), prefix=False)
    for w in streams:
        for _ in range(50):
            assert w.next().HasField("created")
    assert c.metric("cachecar_watches") == 1000
    produce(bootstrap, t, [(f"k{i}".encode(), json.dumps({"i": i}).encode()) for i in range(1000)])
    for s, w in enumerate(streams):
        seen = {}
        while len(seen) < 50:
            r = w.next()
            for e in r.events.events:
                assert r.watch_id not in seen
                seen[r.watch_id] = e.entry
        for j, entry in seen.items():
            assert entry.key == f"k{s * 50 + j}".encode()
            assert json.loads(entry.value) == {"i": s * 50 + j}
    for w in streams:
        w.close()
    deadline_wait(lambda: c.metric("cachecar_watches") == 0, 30, what="watches released")


def test_cancel_limits_and_malformed_requests(admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("limits"))
    c = cachecar_factory([{"name": t}],
                         extra={"watch": {"max_watches_per_stream": 3, "max_watches": 5}})
    c.start()
    c.wait_ready()
    a, b = Watcher(c.address), Watcher(c.address)
    for i in range(4):
        a.create(watch_id=i, topic=t, key=b"")
    kinds = [a.next() for _ in range(4)]
    assert [k.WhichOneof("kind") for k in kinds] == ["created"] * 3 + ["canceled"]
    assert kinds[3].canceled.reason == pb.WatchCanceled.LIMIT_EXCEEDED
    assert "max_watches_per_stream" in kinds[3].canceled.message
    for i in range(3):
        b.create(watch_id=i, topic=t, key=b"")
    kinds = [b.next() for _ in range(3)]
    assert kinds[2].canceled.reason == pb.WatchCanceled.LIMIT_EXCEEDED
    assert "watch.max_watches" in kinds[2].canceled.message
    a.cancel(0)
    r = a.next()
    assert r.watch_id == 0 and r.canceled.reason == pb.WatchCanceled.CANCELED_BY_CLIENT
    b.create(watch_id=9, topic=t, key=b"")
    assert b.next().HasField("created")
    b.create(watch_id=9, topic=t, key=b"x")
    assert b.next().canceled.reason == pb.WatchCanceled.WATCH_ID_IN_USE
    b.create(watch_id=10, topic="nope", key=b"")
    r = b.next()
    assert r.canceled.reason == pb.WatchCanceled.INVALID_REQUEST and "not configured" in r.canceled.message
    # A request with nothing in it ends the stream with INVALID_ARGUMENT.
    b.requests.put(pb.WatchRequest())
    assert b.responses.get(timeout=30) is None
    assert b.error.code() == grpc.StatusCode.INVALID_ARGUMENT
    a.close()
    b.close()


def test_cachecarctl_watch_prints_json_lines(admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("ctl"))
    produce(bootstrap, t, [(b"u1", b'{"n":1}'), (b"u2", b'{"n":2}')])
    c = cachecar_factory([{"name": t}])
    c.start()
    c.wait_ready()
    p = subprocess.Popen([CACHECARCTL_BIN, "--address", c.address, "watch", t, "--prefix", "u",
                          "--snapshot", "--count", "2", "--no-progress", "--prev"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = json.loads(p.stdout.readline())
        assert first["type"] == "CREATED" and first["store_id"]
        lines = [json.loads(p.stdout.readline()) for _ in range(3)]
        assert [l["type"] for l in lines] == ["SNAPSHOT", "SNAPSHOT", "SNAPSHOT_END"]
        assert lines[0]["key"] == "u1" and lines[0]["value"] == {"n": 1}
        # The watch is in place: these two changes are its --count 2 events.
        produce(bootstrap, t, [(b"u1", b'{"n":3}'), (b"u2", None)])
        rest = [json.loads(l) for l in p.stdout.read().splitlines()]
        assert p.wait(timeout=30) == 0, p.stderr.read()
    finally:
        p.kill()
    assert [l["type"] for l in rest] == ["PUT", "DELETE"]
    assert rest[0]["value"] == {"n": 3} and rest[0]["prev"]["value"] == {"n": 1}
    assert "value" not in rest[1] and rest[1]["key"] == "u2"
    assert rest[1]["revision"] == lines[2]["revision"] + 2
    bad = c.ctl("watch", "nope", "--prefix", "")
    assert bad.returncode == 5
    assert b"INVALID_REQUEST" in bad.stdout
