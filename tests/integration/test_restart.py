"""Resume after kill -9 and after a clean shutdown: no gap, no full replay."""
import json
import os
import random

from conftest import create_topic, deadline_wait, last_values, pb, produce, unique

TOTAL = 200_000
PARTITIONS = 8


def backlog(seed):
    rng = random.Random(seed)
    for i in range(TOTAL):
        key = f"k{rng.randrange(50_000)}".encode()
        if rng.random() < 0.05:
            yield key, None
        else:
            yield key, json.dumps({"i": i, "pad": "x" * 100}).encode()


def applied(c):
    st = c.stub.GetStatus(pb.GetStatusRequest(), timeout=5)
    return sum(max(p.applied_offset, 0) for t in st.topics for p in t.partitions), st.ready


def test_kill9_during_catch_up_resumes_exactly(admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("kill9"), partitions=PARTITIONS)
    produce(bootstrap, t, backlog(seed=7))
    # Small batches: many commits, so a kill lands between commits and inside one.
    extra = {"materializer": {"batch_max_records": 500}}
    c = cachecar_factory([{"name": t}], extra=extra)
    mid_kills = 0
    last = 0
    for round_ in range(4):
        c.start()
        # Wait for progress beyond the previous round, then kill at once.
        progress = deadline_wait(lambda: (lambda a: a if a[0] > last or a[1] else None)(applied(c)),
                                 timeout=60, what="catch-up progress")
        c.kill9()
        if not progress[1]:
            mid_kills += 1
        last = progress[0]
    assert mid_kills >= 1, "no kill landed during catch-up; the backlog is too small"

    c.start()
    c.wait_ready(timeout=120)
    # It resumed: it started from stored offsets and consumed less than the whole topic.
    assert c.metric("cachecar_partition_start_offset", topic=t) > 0
    assert c.metric("cachecar_materializer_records_consumed_total", topic=t) < TOTAL
    assert c.find_logs("resuming partition from stored offset")
    expected = last_values(bootstrap, t, PARTITIONS)
    got = c.list_all(t)
    assert got == expected, f"{len(got)} keys served, {len(expected)} expected"


def test_clean_shutdown_commits_and_restart_replays_nothing(admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("restart"), partitions=2)
    produce(bootstrap, t, [(f"k{i}".encode(), b"1") for i in range(1000)])
    c = cachecar_factory([{"name": t}])
    c.start()
    c.wait_ready()
    rev = c.status().store_revision
    store_id = c.status().store_id
    assert c.stop() == 0
    assert c.find_logs("stopped")

    c.start()
    c.wait_ready(timeout=30)
    st = c.status()
    assert st.store_id == store_id, "the store must survive a restart"
    assert st.store_revision == rev, "revisions survive restarts"
    assert c.metric("cachecar_materializer_records_consumed_total", topic=t) == 0
    assert len(c.list_all(t)) == 1000
    # New records continue the revision sequence.
    produce(bootstrap, t, [(b"new", b"2")])
    deadline_wait(lambda: c.stub.Get(pb.GetRequest(topic=t, key=b"new"), timeout=5).found,
                  timeout=30, what="new record")
    e = c.stub.Get(pb.GetRequest(topic=t, key=b"new"), timeout=5).entry
    assert e.revision == rev + 1


def test_unsynced_store_is_kept_after_kill9_and_marked_clean_by_a_clean_stop(
        admin, bootstrap, cachecar_factory):
    """store.sync: none (the default): the store names this boot while it runs, so a kill -9
    (same boot: the page cache has every write) keeps it, and a clean stop syncs it and
    marks it clean, so a machine restart after that keeps it too."""
    t = create_topic(admin, unique("nosync"), partitions=2)
    produce(bootstrap, t, [(f"k{i}".encode(), b"1") for i in range(1000)])
    c = cachecar_factory([{"name": t}])
    c.start()
    c.wait_ready()
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot_id = f.read().strip()
    state = os.path.join(c.store_dir, "sync-state")
    with open(state) as f:
        assert f.read().strip() == boot_id
    store_id = c.status().store_id
    c.kill9()

    c.start()
    c.wait_ready(timeout=30)
    assert c.status().store_id == store_id, "a process crash keeps an unsynced store"
    assert c.metric("cachecar_store_recreated_total", reason="STORE_UNSYNCED") == 0
    assert len(c.list_all(t)) == 1000
    assert c.stop() == 0
    with open(state) as f:
        assert f.read().strip() == "clean"


def test_unsynced_store_left_by_an_earlier_boot_is_rebuilt_not_served(
        admin, bootstrap, cachecar_factory):
    """A machine crash, as the disk shows it afterwards: an unsynced store whose marker names
    another boot. It is deleted and rebuilt from Kafka, never served."""
    t = create_topic(admin, unique("nosync-boot"), partitions=2)
    produce(bootstrap, t, [(f"k{i}".encode(), b"1") for i in range(1000)])
    c = cachecar_factory([{"name": t}])
    c.start()
    c.wait_ready()
    store_id = c.status().store_id
    c.kill9()
    with open(os.path.join(c.store_dir, "sync-state"), "w") as f:
        f.write("00000000-0000-4000-8000-000000000000\n")  # the boot before the crash

    c.start()
    c.wait_ready(timeout=60)
    assert c.status().store_id != store_id, "the unsynced store must not be served"
    assert c.metric("cachecar_store_recreated_total", reason="STORE_UNSYNCED") == 1
    assert c.find_logs("store was unusable; deleted it and rebuilding from Kafka")
    assert len(c.list_all(t)) == 1000
