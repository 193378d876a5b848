"""Shared fixtures for the integration tests.

Everything here drives real processes: the cachecar binary, a real Kafka broker started by
the ctest fixture (scripts/kafka.sh), confluent-kafka and kcat as independent producers and
consumers, and grpcio as an independent gRPC client.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

import grpc
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

SOURCE_DIR = os.environ.get("CACHECAR_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
WORK_DIR = os.environ.get("CACHECAR_WORK_DIR", tempfile.mkdtemp(prefix="cachecar-it-"))
CACHECAR_BIN = os.environ.get("CACHECAR_BIN", os.path.join(SOURCE_DIR, "build/cachecar"))
CACHECARCTL_BIN = os.environ.get("CACHECARCTL_BIN", os.path.join(SOURCE_DIR, "build/cachecarctl"))


def _generate_stubs():
    """Generates Python stubs from proto/ (grpcio-tools) so tests use the public API as is."""
    out = os.path.join(WORK_DIR, "gen")
    os.makedirs(out, exist_ok=True)
    from grpc_tools import protoc
    import grpc_tools
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main(["protoc", f"-I{SOURCE_DIR}/proto", f"-I{well_known}",
                      f"--python_out={out}", f"--grpc_python_out={out}",
                      f"{SOURCE_DIR}/proto/cachecar/v1/cache.proto",
                      f"{SOURCE_DIR}/proto/cachecar/v1/snapshot.proto"])
    assert rc == 0, "protoc failed"
    sys.path.insert(0, out)


_generate_stubs()
from cachecar.v1 import cache_pb2, cache_pb2_grpc  # noqa: E402

pb = cache_pb2


def deadline_wait(cond, timeout=60.0, what="condition", interval=0.05):
    """Polls cond() until it is truthy or timeout passes; fails the test naming `what`."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def bootstrap():
    kdir = os.environ.get("KAFKA_DIR")
    assert kdir, "KAFKA_DIR is not set: run through ctest (scripts/test.sh)"
    with open(os.path.join(kdir, "bootstrap")) as f:
        return f.read().strip()


@pytest.fixture(scope="session")
def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def unique(name):
    return f"{name}-{uuid.uuid4().hex[:8]}"


def create_topic(admin, name, partitions=1, config=None):
    futures = admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])
    futures[name].result(timeout=30)
    # Metadata propagates asynchronously; wait until the broker lists every partition.
    deadline_wait(lambda: len(admin.list_topics(name, timeout=5).topics[name].partitions) == partitions
                  and admin.list_topics(name, timeout=5).topics[name].error is None,
                  timeout=30, what=f"topic {name} metadata")
    return name


def producer(bootstrap, **extra):
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
            "partitioner": "murmur2_random", "linger.ms": 5,
            "message.max.bytes": 2000000}
    conf.update(extra)
    return Producer(conf)


def produce(bootstrap, topic, records, partition=None):
    """records: iterable of (key bytes|str|None, value bytes|str|None)."""
    p = producer(bootstrap)
    errors = []

    def cb(err, _msg):
        if err is not None:
            errors.append(err)

    for key, value in records:
        kwargs = {"key": key, "value": value, "on_delivery": cb}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(60) == 0, "producer did not flush"
    assert not errors, errors


def end_offsets(bootstrap, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("probe"),
                  "isolation.level": "read_committed"})
    try:
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)]
    finally:
        c.close()


def last_values(bootstrap, topic, partitions, validate=None):
    """Reads the whole topic with an independent read_committed consumer; returns the latest
    value per key, tombstones removing keys. `validate(key, value)` may drop records that the
    sidecar must reject."""
    ends = end_offsets(bootstrap, topic, partitions)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("verify"),
                  "isolation.level": "read_committed", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    # From the log start, which retention may have moved past 0.
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    state = {}
    done = {p for p in range(partitions) if ends[p] == 0}
    end = time.monotonic() + 120
    while len(done) < partitions:
        assert time.monotonic() < end, "independent consumer did not reach the end"
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                if m.offset() >= ends[m.partition()]:
                    done.add(m.partition())
                continue
            raise AssertionError(m.error())
        key, value = m.key(), m.value()
        if validate is not None and not validate(key, value):
            continue
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    c.close()
    return state


class Cachecar:
    """A cachecar process with its config, log and ports."""

    def __init__(self, bootstrap, topics, store_dir=None, extra=None, name="cachecar"):
        self.dir = tempfile.mkdtemp(prefix=name + "-", dir=_workdir())
        self.store_dir = store_dir or os.path.join(self.dir, "store")
        self.config_path = os.path.join(self.dir, "cachecar.yaml")
        cfg = {
            "kafka": {"bootstrap_servers": "${KAFKA_BOOTSTRAP}"},
            "store": {"path": self.store_dir, "map_size_bytes": 4 << 30},
            "grpc": {"address": "127.0.0.1:0"},
            "http": {"address": "127.0.0.1:0"},
            "topics": topics,
        }
        for k, v in (extra or {}).items():
            cfg.setdefault(k, {}).update(v) if isinstance(v, dict) else cfg.__setitem__(k, v)
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)  # JSON is YAML
        self.bootstrap = bootstrap
        self.proc = None
        self.logs = []
        self._log_lock = threading.Lock()

    def start(self, wait_listening=True, args=()):
        env = dict(os.environ, KAFKA_BOOTSTRAP=self.bootstrap)
        self.log_path = os.path.join(self.dir, f"cachecar-{len(self.logs)}.log")
        self.proc = subprocess.Popen([CACHECAR_BIN, "--config", self.config_path, *args],
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
        self._lines = []
        self.logs.append(self._lines)
        self._reader = threading.Thread(target=self._read, args=(self.proc, self._lines),
                                        daemon=True)
        self._reader.start()
        if wait_listening:
            line = self.wait_log("listening", timeout=30)
            self.grpc_port = line["grpc_port"]
            self.http_port = line["http_port"]
            self.peer_port = line.get("peer_port", 0)
            self.address = f"127.0.0.1:{self.grpc_port}"
            self.channel = grpc.insecure_channel(self.address)
            self.stub = cache_pb2_grpc.CacheServiceStub(self.channel)
        return self

    def _read(self, proc, lines):
        with open(self.log_path, "w") as out:
            for raw in proc.stderr:
                text = raw.decode("utf-8", "replace")
                out.write(text)
                out.flush()
                try:
                    entry = json.loads(text)
                except ValueError:
                    entry = {"msg": text.strip()}
                with self._log_lock:
                    lines.append(entry)

    def find_logs(self, msg):
        if self.proc is not None and self.proc.poll() is not None:
            # Exited: its last lines may still be in the pipe; read them all first.
            self._reader.join(timeout=10)
        with self._log_lock:
            return [l for l in self._lines if l.get("msg") == msg]

    def wait_log(self, msg, timeout=60):
        def found():
            if self.proc.poll() is not None and not self.find_logs(msg):
                raise AssertionError(f"cachecar exited ({self.proc.returncode}) before logging {msg!r}; "
                                     f"log: {self.log_path}")
            hits = self.find_logs(msg)
            return hits[0] if hits else None
        return deadline_wait(found, timeout, what=f"log line {msg!r}")

    def http(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self):
        """Parses /metrics into {(name, frozenset(labels)): value}."""
        _, text = self.http("/metrics")
        out = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            name_labels, value = line.rsplit(" ", 1)
            labels = frozenset()
            name = name_labels
            if "{" in name_labels:
                name, rest = name_labels.split("{", 1)
                pairs = [p for p in rest.rstrip("}").split(",") if p]
                labels = frozenset(tuple(p.split("=", 1)) for p in pairs)
                labels = frozenset((k, v.strip('"')) for k, v in labels)
            out[(name, labels)] = float(value)
        return out

    def metric(self, name, **labels):
        want = frozenset((k, str(v)) for k, v in labels.items())
        return sum(v for (n, l), v in self.metrics().items() if n == name and want <= l)

    def status(self):
        return self.stub.GetStatus(pb.GetStatusRequest(), timeout=5)

    def wait_ready(self, timeout=120):
        deadline_wait(lambda: self.status().ready, timeout, what="cachecar ready")

    def list_all(self, topic, prefix=b""):
        out, token = {}, ""
        while True:
            r = self.stub.List(pb.ListRequest(topic=topic, prefix=prefix, page_size=1000,
                                              page_token=token), timeout=30)
            for e in r.entries:
                assert e.key not in out, f"key {e.key!r} listed twice"
                out[e.key] = e.value
            token = r.next_page_token
            if not token:
                return out

    def ctl(self, *args):
        return subprocess.run([CACHECARCTL_BIN, "--address", self.address, *args],
                              capture_output=True, timeout=60)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def kill9_during_catch_up(self, records, rounds=3):
        """Starts and kill -9s the sidecar `rounds` times, each once it has applied more of
        its first topic than before; asserts at least one kill landed before all `records`
        were applied. Leaves it stopped."""
        def applied():
            return sum(p.applied_offset for p in self.status().topics[0].partitions)

        last, kills_mid = 0, 0
        for _ in range(rounds):
            self.start()
            got = deadline_wait(lambda: (lambda a: a if a > last else None)(applied()),
                                timeout=60, what="progress")
            self.kill9()
            kills_mid += got < records
            last = got
        assert kills_mid >= 1, "no kill landed during catch-up"

    def stop(self, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout=timeout)
        return self.proc.returncode if self.proc else None


def _workdir():
    os.makedirs(WORK_DIR, exist_ok=True)
    return WORK_DIR


@pytest.fixture
def cachecar_factory(bootstrap):
    started = []

    def make(topics, **kw):
        c = Cachecar(bootstrap, topics, **kw)
        started.append(c)
        return c

    yield make
    for c in started:
        if c.proc and c.proc.poll() is None:
            c.proc.kill()
            c.proc.wait()
