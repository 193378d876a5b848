"""A soak against a broker of its own: for CACHECAR_SOAK_SECONDS (3 minutes), Puts through
the sidecar and an independent producer write, readers read, snapshot watches read slowly,
partitions are added and the broker restarts, all at once. Then the sidecar's state agrees
with an independent consumer's reading of the topic, every watch's copy equals the
sidecar's (no change missed), no watch saw a revision twice or out of order, and the
sidecar's memory stayed bounded.

"Agrees" is Kafka's own guarantee: records are ordered within a partition only. A key whose
records all lie in one partition must hold exactly that partition's last value (or be
absent after a tombstone). Adding partitions moves keys (both producers use the Java
client's murmur2 partitioner, as cachecar's does), so a key written before and after the
growth lies in two partitions, and no order between them exists: the sidecar's entry must
then be the last record of the key in the partition it names, at the offset it names (or,
absent, some partition's last record of the key is a tombstone)."""
import json
import os
import random
import subprocess
import threading
import time

import grpc
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewPartitions

from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

from conftest import Cachecar, cache_pb2_grpc, create_topic, deadline_wait, end_offsets, pb, unique
from test_operations import KAFKA_SH, own_broker  # noqa: F401 (a fixture)

SOAK_SECONDS = float(os.environ.get("CACHECAR_SOAK_SECONDS", "180"))
KEYS = 300
# RSS the sidecar may reach with this little data (a few hundred keys, a dozen streams).
RSS_LIMIT_MIB = 512


def last_per_partition(bootstrap, topic, partitions):
    """key -> {partition: (offset, value or None)}: each partition's last record of each key,
    read by an independent read_committed consumer."""
    ends = end_offsets(bootstrap, topic, partitions)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("soak-verify"),
                  "isolation.level": "read_committed", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    last = {}
    done = {p for p in range(partitions) if ends[p] == 0}
    deadline = time.monotonic() + 120
    while len(done) < partitions:
        assert time.monotonic() < deadline, "the independent consumer did not reach the end"
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191 and m.offset() >= ends[m.partition()]:  # EOF
                done.add(m.partition())
            continue
        last.setdefault(m.key(), {})[m.partition()] = (m.offset(), m.value())
    c.close()
    return last


def disagreements(sidecar, last):
    """Keys where the sidecar's entries ({key: Entry}) break Kafka's per-partition order."""
    bad = []
    for key in set(sidecar) | set(last):
        records = last.get(key, {})
        e = sidecar.get(key)
        if e is None:
            ok = any(value is None for _, value in records.values())
        else:
            ok = records.get(e.partition) == (e.offset, e.value)
        if not ok:
            bad.append((key, e and (e.partition, e.offset, e.value), records))
    return bad


def list_entries(c, topic):
    out, token = {}, ""
    while True:
        r = c.stub.List(pb.ListRequest(topic=topic, page_size=1000, page_token=token), timeout=30)
        for e in r.entries:
            out[e.key] = e
        token = r.next_page_token
        if not token:
            return out


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class SlowSnapshotWatch:
    """A stream with one snapshot watch on the whole topic, read slowly during its snapshot
    (a second per page, while the writers go on), then as fast as it comes. Keeps its own
    copy of the topic and checks revisions only go up."""

    def __init__(self, address, topic, closed):
        self.channel = grpc.insecure_channel(address,
                                             options=[("grpc.use_local_subchannel_pool", 1)])
        self.stub = cache_pb2_grpc.CacheServiceStub(self.channel)
        self.topic = topic
        self.closed = closed
        self.state = {}
        self.revision = 0       # the last revision delivered (event, snapshot_end, progress)
        self.problems = []
        self.snapshot_done = False
        self.requests = []
        self._cv = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _requests(self):
        yield pb.WatchRequest(create=pb.WatchCreateRequest(watch_id=1, topic=self.topic,
                                                           prefix=True, snapshot=True))
        while not self.closed.is_set():
            with self._cv:
                self._cv.wait(timeout=1)
                pending, self.requests = self.requests, []
            yield from pending

    def ask_progress(self):
        with self._cv:
            self.requests.append(pb.WatchRequest(progress=pb.WatchProgressRequest()))
            self._cv.notify()

    def _run(self):
        try:
            for r in self.stub.Watch(self._requests()):
                if r.HasField("snapshot"):
                    for e in r.snapshot.entries:
                        self.state[e.key] = e.value
                    # The slow reader is the scenario (a snapshot read over seconds while
                    # the topic changes), not a wait for anything.
                    time.sleep(1)
                elif r.HasField("snapshot_end"):
                    self.revision = r.snapshot_end.revision
                    self.snapshot_done = True
                elif r.HasField("events"):
                    for e in r.events.events:
                        if e.revision <= self.revision:
                            self.problems.append(f"revision {e.revision} after {self.revision}")
                        self.revision = e.revision
                        if e.type == pb.WatchEvent.DELETE:
                            self.state.pop(e.entry.key, None)
                        else:
                            self.state[e.entry.key] = e.entry.value
                elif r.HasField("progress"):
                    self.revision = max(self.revision, r.progress.revision)
                elif r.HasField("canceled"):
                    self.problems.append(f"canceled: {r.canceled}")
                    return
        except grpc.RpcError as e:
            if not self.closed.is_set():
                self.problems.append(f"stream ended: {e.code()} {e.details()}")


def test_soak_writers_readers_slow_snapshots_new_partitions_and_a_broker_restart(own_broker):
    kdir, bootstrap = own_broker
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = create_topic(admin, unique("soak"), partitions=2)
    c = Cachecar(bootstrap, [{"name": topic, "read_only": False}], name="soak",
                 extra={"kafka": {"metadata_refresh_ms": 1000}})
    c.start()
    stop = threading.Event()
    closed = threading.Event()  # the watches' streams end
    errors = []
    counts = {"puts": 0, "produced": 0, "reads": 0}
    rss = []
    try:
        c.wait_ready()
        key = lambda: f"k{random.randrange(KEYS)}".encode()  # noqa: E731

        def putter():
            stub = cache_pb2_grpc.CacheServiceStub(grpc.insecure_channel(
                c.address, options=[("grpc.use_local_subchannel_pool", 1)]))
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    if n % 10 == 0:
                        stub.Delete(pb.DeleteRequest(topic=topic, key=key()), timeout=10)
                    else:
                        stub.Put(pb.PutRequest(topic=topic, key=key(),
                                               value=json.dumps({"put": n}).encode()), timeout=10)
                    counts["puts"] += 1
                except grpc.RpcError as e:
                    # During the broker's restart writes are refused or time out; nothing else.
                    if e.code() not in (grpc.StatusCode.UNAVAILABLE,
                                        grpc.StatusCode.DEADLINE_EXCEEDED):
                        errors.append(f"put: {e.code()} {e.details()}")

        def producer():
            p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                          "linger.ms": 5, "partitioner": "murmur2_random"})
            n = 0
            while not stop.is_set():
                n += 1
                value = None if n % 17 == 0 else json.dumps({"produced": n}).encode()
                try:
                    p.produce(topic, key=key(), value=value)
                    counts["produced"] += 1
                except BufferError:
                    p.poll(0.1)
                p.poll(0)
                time.sleep(0.002)  # a steady rate, not a wait for anything
            if p.flush(120) != 0:
                errors.append("the independent producer could not deliver everything")

        def reader():
            stub = cache_pb2_grpc.CacheServiceStub(grpc.insecure_channel(
                c.address, options=[("grpc.use_local_subchannel_pool", 1)]))
            while not stop.is_set():
                try:
                    r = stub.BatchGet(pb.BatchGetRequest(topic=topic, keys=[key() for _ in range(20)]),
                                      timeout=5)
                    for x in r.results:
                        if x.found:
                            json.loads(x.entry.value)
                    counts["reads"] += 1
                except grpc.RpcError as e:
                    errors.append(f"read: {e.code()} {e.details()}")

        def sampler():
            while not stop.is_set():
                rss.append(rss_mib(c.proc.pid))
                stop.wait(1)

        workers = [threading.Thread(target=f, daemon=True)
                   for f in (putter, putter, producer, reader, reader, sampler)]
        for w in workers:
            w.start()
        watches = [SlowSnapshotWatch(c.address, topic, closed)]
        start = time.monotonic()
        elapsed = lambda: time.monotonic() - start  # noqa: E731
        grew = restarted = False
        while elapsed() < SOAK_SECONDS:
            if not grew and elapsed() > SOAK_SECONDS / 4:
                admin.create_partitions([NewPartitions(topic, 4)])[topic].result(timeout=30)
                grew = True
            if not restarted and elapsed() > SOAK_SECONDS / 2:
                subprocess.run([KAFKA_SH, "stop", kdir], check=True, capture_output=True)
                time.sleep(10)  # the outage's length is the point
                subprocess.run([KAFKA_SH, "resume", kdir], check=True, capture_output=True)
                restarted = True
            if len(watches) < 6 and elapsed() > len(watches) * SOAK_SECONDS / 6:
                watches.append(SlowSnapshotWatch(c.address, topic, closed))
            assert c.proc.poll() is None, "cachecar exited"
            time.sleep(1)  # the scenario's clock: one step a second, not a wait for anything
        stop.set()
        for w in workers:
            w.join(timeout=180)
        assert grew and restarted

        # Everything written is applied, in each partition's order.
        ends = end_offsets(bootstrap, topic, 4)
        deadline_wait(lambda: sorted((p.partition, p.applied_offset)
                                     for p in c.status().topics[0].partitions)
                      == list(enumerate(ends)),
                      timeout=120, what="the sidecar to apply every partition to its end")
        last = last_per_partition(bootstrap, topic, 4)
        entries = list_entries(c, topic)
        bad = disagreements(entries, last)
        assert not bad, f"{len(bad)} keys disagree with the topic, e.g. {bad[:3]}"
        expected = {k: e.value for k, e in entries.items()}
        assert {p.partition for p in c.status().topics[0].partitions} == {0, 1, 2, 3}
        # Every watch's copy equals it too, and none saw a revision twice.
        final_revision = c.status().store_revision
        def all_reached():
            for w in watches:
                w.ask_progress()
            return all(w.revision >= final_revision or w.problems for w in watches)
        deadline_wait(all_reached, timeout=120, what="every watch to reach the final revision",
                      interval=0.5)
        for i, w in enumerate(watches):
            assert not w.problems, (i, w.problems[:5])
            assert w.state == expected, f"watch {i} differs from the sidecar's state"
        assert not errors, errors[:10]
        assert counts["puts"] > 100 and counts["produced"] > 1000 and counts["reads"] > 100, counts
        # Memory stayed bounded: under the limit, and no steady growth in the last half.
        assert max(rss) < RSS_LIMIT_MIB, max(rss)
        half = len(rss) // 2
        assert max(rss[half:]) < max(rss[:half]) * 1.5 + 64, (max(rss[:half]), max(rss[half:]))
    finally:
        stop.set()
        closed.set()
        c.stop()
