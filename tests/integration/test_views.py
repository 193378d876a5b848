"""Views (topics[].views) against the real broker: records from an independent producer
(confluent-kafka), the expected view computed here from the topic as an independent
consumer reads it."""
import json
import os
import random
import subprocess

import grpc

from conftest import (CACHECAR_BIN, create_topic, deadline_wait, pb, produce, producer, unique)
from test_bad_input import call_error, rich_status
from test_watch import Watcher, topic_records


def view_get(c, view, key):
    r = c.stub.Get(pb.GetRequest(topic=view, key=key), timeout=5)
    return json.loads(r.entry.value) if r.found else None


def members(c, view, key):
    """{topic key: value} of the view key's entries."""
    got = view_get(c, view, key)
    return None if got is None else {m["key"]: m["value"] for m in got}


def expected_views(records, key_of):
    """The topic's latest values folded from `records`, then grouped by key_of(value)."""
    latest = {}
    for _, _, key, value in sorted(records, key=lambda r: (r[0], r[1])):
        if value is None:
            latest.pop(key, None)
        else:
            latest[key] = json.loads(value)
    view = {}
    for key, value in latest.items():
        for vk in key_of(value):
            view.setdefault(vk.encode(), {})[key.decode()] = value
    return latest, view


def test_a_view_follows_its_topic_through_updates_key_changes_and_deletes(
        admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("users"))
    by_email, by_team, by_id = t + "-by-email", t + "-by-team", t + "-by-id"
    produce(bootstrap, t, [
        (b"u1", json.dumps({"id": 1, "email": "Ada@X.org", "teams": ["red", "blue"]})),
        (b"u2", json.dumps({"id": 2, "email": "bob@x.org", "teams": ["red"]})),
        (b"u3", json.dumps({"id": 3, "email": 42})),  # the email view's key fails on it
    ])
    c = cachecar_factory([{"name": t, "views": [
        {"name": by_email, "key": ".email | ascii_downcase"},
        {"name": by_team, "key": ".teams[]?"},
        {"name": by_id, "key": ".id"},
    ]}]).start()
    c.wait_ready()
    assert members(c, by_email, b"ada@x.org") == {
        "u1": {"id": 1, "email": "Ada@X.org", "teams": ["red", "blue"]}}
    assert set(members(c, by_team, b"red")) == {"u1", "u2"}
    assert set(members(c, by_team, b"blue")) == {"u1"}
    assert set(members(c, by_id, b"3")) == {"u3"}  # a number's key is its JSON text
    # The failing key leaves u3 out of that view only, counted; u3 is stored.
    assert c.metric("cachecar_view_key_errors_total", view=by_email, reason="error") == 1
    assert c.list_all(by_email).keys() == {b"ada@x.org", b"bob@x.org"}

    w = Watcher(c.address)
    w.create(topic=by_email, key=b"", prefix=True, resume_revision=c.status().store_revision)
    assert w.next().created

    # Ada's email changes: the old view key disappears; Bob is deleted: he leaves them all.
    produce(bootstrap, t, [
        (b"u1", json.dumps({"id": 1, "email": "ada@new.org", "teams": ["blue"]})),
        (b"u2", None),
    ])
    deadline_wait(lambda: view_get(c, by_email, b"ada@x.org") is None, what="old view key gone")
    assert set(members(c, by_email, b"ada@new.org")) == {"u1"}
    deadline_wait(lambda: view_get(c, by_team, b"red") is None, what="team left")
    assert set(members(c, by_team, b"blue")) == {"u1"}
    assert view_get(c, by_email, b"bob@x.org") is None
    assert view_get(c, by_id, b"2") is None
    assert c.list_all(by_email).keys() == {b"ada@new.org"}

    # Watchers of the view see its own events: the new key, the old one deleted, Bob gone.
    seen = {}
    while len(seen) < 3:
        r = w.next()
        for e in r.events.events:
            seen[e.entry.key] = e.type
    assert seen == {b"ada@new.org": pb.WatchEvent.PUT, b"ada@x.org": pb.WatchEvent.DELETE,
                    b"bob@x.org": pb.WatchEvent.DELETE}, seen
    w.close()

    # BatchGet reads views like topics; a view takes no writes.
    r = c.stub.BatchGet(pb.BatchGetRequest(topic=by_id, keys=[b"1", b"2"]), timeout=5)
    assert [e.found for e in r.results] == [True, False]
    err = call_error(c.stub.Put, pb.PutRequest(topic=by_email, key=b"k", value=b"{}"))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert rich_status(err)[0].reason == "VIEW_READ_ONLY"
    st = {s.topic: s for s in c.status().topics}
    assert st[by_team].view_of == t and st[by_team].ready and st[by_team].key_count == 1
    assert st[t].view_of == ""


def test_kill9_during_view_updates_leaves_the_view_equal_to_the_topic(
        admin, bootstrap, cachecar_factory):
    partitions = 2
    t = create_topic(admin, unique("viewkill"), partitions=partitions)
    view = t + "-by-team"
    rnd = random.Random(7)
    records = []
    for i in range(20000):
        key = f"k{rnd.randrange(500)}".encode()
        if rnd.random() < 0.03:
            records.append((key, None))
        else:
            teams = rnd.sample(["a", "b", "c", "d", "e", "f"], rnd.randrange(3))
            records.append((key, json.dumps({"teams": teams, "seq": i}).encode()))
    produce(bootstrap, t, records)
    c = cachecar_factory([{"name": t, "views": [{"name": view, "key": ".teams[]"}]}],
                         extra={"materializer": {"batch_max_records": 500}})

    c.kill9_during_catch_up(len(records))
    c.start()
    c.wait_ready(timeout=120)

    latest, expected = expected_views(topic_records(bootstrap, t, partitions),
                                      lambda v: v["teams"])
    got_topic = {k: json.loads(v) for k, v in c.list_all(t).items()}
    assert got_topic == latest
    got_view = {k: {m["key"]: m["value"] for m in json.loads(v)}
                for k, v in c.list_all(view).items()}
    assert got_view == expected


def test_a_view_key_that_does_not_compile_or_a_clashing_name_stops_the_start(
        admin, cachecar_factory):
    t = create_topic(admin, unique("viewbad"))
    c = cachecar_factory([{"name": t, "views": [{"name": t + "-v", "key": ".a |"}]}])
    r = subprocess.run([CACHECAR_BIN, "--config", c.config_path, "--check-config"],
                       capture_output=True, timeout=60, env=dict(os.environ, KAFKA_BOOTSTRAP="x:1"))
    assert r.returncode == 2, r
    err = r.stderr.decode()
    assert "topics[0].views[0].key" in err and "cachecar.yaml:" in err, err
    clash = cachecar_factory([{"name": t, "views": [{"name": t, "key": ".a"}]}])
    r = subprocess.run([CACHECAR_BIN, "--config", clash.config_path, "--check-config"],
                       capture_output=True, timeout=60, env=dict(os.environ, KAFKA_BOOTSTRAP="x:1"))
    assert r.returncode == 2, r
    assert "topics[0].views[0].name" in r.stderr.decode()


def test_adding_a_view_rebuilds_its_topic_and_fills_the_view(admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("viewadd"))
    produce(bootstrap, t, [(b"u1", b'{"e":"a"}'), (b"u2", b'{"e":"b"}')])
    plain = cachecar_factory([{"name": t}]).start()
    plain.wait_ready()
    assert plain.stop() == 0
    with_view = cachecar_factory([{"name": t, "views": [{"name": t + "-by-e", "key": ".e"}]}],
                                 store_dir=plain.store_dir).start()
    with_view.wait_ready()
    assert set(members(with_view, t + "-by-e", b"a")) == {"u1"}
    assert set(members(with_view, t + "-by-e", b"b")) == {"u2"}
    assert with_view.metric("cachecar_materializer_topic_rebuilds_total", topic=t,
                            reason="definition_changed") == 1


def test_cachecarctl_transform_shows_the_view_keys_an_entry_would_be_under(tmp_path):
    from conftest import CACHECARCTL_BIN
    cfg = tmp_path / "cachecar.yaml"
    cfg.write_text(json.dumps({
        "kafka": {"bootstrap_servers": "${KAFKA_BOOTSTRAP}"},
        "topics": [{"name": "users", "apply": "merge-patch", "views": [
            {"name": "by-email", "key": ".email | ascii_downcase"},
            {"name": "by-team", "key": ".teams[]?"}]}]}))

    def ctl(*args):
        r = subprocess.run([CACHECARCTL_BIN, "-o", "json", "transform", "-c", str(cfg), *args],
                           capture_output=True, timeout=60)
        return r.returncode, json.loads(r.stdout) if r.stdout else r.stderr.decode()

    rc, out = ctl("users", "--key", "u1", "--current", '{"email":"A@X","teams":["r"]}',
                  '{"teams":["r","b"]}')
    assert rc == 0, out
    assert out["views"] == {"by-email": ["a@x"], "by-team": ["r", "b"]}
    rc, out = ctl("users", '{"email": 7}')
    assert rc == 0 and out["views"]["by-team"] == [], out
    assert "error" in out["views"]["by-email"], out
    rc, out = ctl("by-email", "{}")
    assert rc == 5 and "is a view of topic users" in out, out


def test_a_hostile_view_key_costs_only_its_entry(admin, bootstrap, cachecar_factory):
    t = create_topic(admin, unique("viewhost"))
    view = t + "-v"
    key = ("if .loop then last(repeat(1)) elif .many then range(5000) | tostring "
           "elif .endless then repeat(\"x\") elif .deep then def f: [f]; f else .id end")
    produce(bootstrap, t, [(b"a", b'{"id":"A"}'), (b"loop", b'{"loop":true}'),
                           (b"many", b'{"many":true}'), (b"endless", b'{"endless":true}'),
                           (b"deep", b'{"deep":true}'), (b"b", b'{"id":"B"}')])
    c = cachecar_factory([{"name": t, "views": [{"name": view, "key": key}]}],
                         extra={"transforms": {"record_budget_ms": 300,
                                               "max_memory_bytes": 256 << 20}}).start()
    c.wait_ready(timeout=60)
    assert c.list_all(view).keys() == {b"A", b"B"}
    assert len(c.list_all(t)) == 6  # every entry is in its topic
    assert c.metric("cachecar_view_key_errors_total", view=view, reason="budget_exceeded") == 1
    # An endless generator is cut after 1,001 keys: too many, like 5,000 of them.
    assert c.metric("cachecar_view_key_errors_total", view=view, reason="too_many_keys") == 2
    assert c.metric("cachecar_view_key_errors_total", view=view, reason="crashed") == 1
    # Live changes go on.
    produce(bootstrap, t, [(b"c", b'{"id":"C"}')])
    deadline_wait(lambda: view_get(c, view, b"C"), what="live entry indexed")
