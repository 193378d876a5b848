"""Bounded everything a client can create (issue 14): waiting calls are capped, a cancelled
call stops waiting at once, and each connection has a maximum of concurrent streams.
Driven with grpcio, an independent client, against a real broker."""
import queue

import grpc

from conftest import cache_pb2_grpc, create_topic, deadline_wait, end_offsets, pb, unique
from test_bad_input import call_error, rich_status


def test_waiting_calls_are_capped_and_cancelled_ones_stop_waiting(admin, bootstrap,
                                                                  cachecar_factory):
    t = create_topic(admin, unique("limits"))
    c = cachecar_factory([{"name": t, "read_only": False}],
                         extra={"grpc": {"max_waiting_calls": 2}})
    c.start()
    c.wait_ready()
    far = 10**12
    # Two reads wait for a revision the store will not reach, each on its own connection.
    channels = [grpc.insecure_channel(c.address) for _ in range(3)]
    stubs = [cache_pb2_grpc.CacheServiceStub(ch) for ch in channels]
    waits = [stubs[i].Get.future(pb.GetRequest(topic=t, key=b"k", min_revision=far), timeout=120)
             for i in range(2)]
    deadline_wait(lambda: c.metric("cachecar_rpc_waiting_calls") == 2, what="two waiting calls")

    e = call_error(stubs[2].Get, pb.GetRequest(topic=t, key=b"k", min_revision=far))
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
    assert rich_status(e)[0].reason == "TOO_MANY_WAITING_CALLS"
    # A Put past the cap is refused before producing: the topic stays empty.
    e = call_error(stubs[2].Put, pb.PutRequest(topic=t, key=b"k", value=b"{}"))
    assert rich_status(e)[0].reason == "TOO_MANY_WAITING_CALLS", e
    assert end_offsets(bootstrap, t, 1) == [0]

    # A cancelled call stops waiting at once, not at its two-minute deadline.
    waits[0].cancel()
    deadline_wait(lambda: c.metric("cachecar_rpc_waiting_calls") == 1, timeout=10,
                  what="the cancelled call to stop waiting")
    put = stubs[2].Put(pb.PutRequest(topic=t, key=b"k", value=b"{}"), timeout=30)
    assert put.applied
    waits[1].cancel()
    deadline_wait(lambda: c.metric("cachecar_rpc_waiting_calls") == 0, timeout=10,
                  what="no call waiting")
    for ch in channels:
        ch.close()


def test_concurrent_streams_per_connection_are_bounded(admin, cachecar_factory):
    t = create_topic(admin, unique("streams"))
    c = cachecar_factory([{"name": t}], extra={"grpc": {"max_concurrent_streams": 2}})
    c.start()
    c.wait_ready()
    # A connection of its own (grpcio shares one between channels to a target by default).
    channel = grpc.insecure_channel(c.address, options=[("grpc.use_local_subchannel_pool", 1)])
    stub = cache_pb2_grpc.CacheServiceStub(channel)
    watches, requests = [], []
    for _ in range(2):
        q = queue.Queue()  # kept open: the stream lives until cancelled
        q.put(pb.WatchRequest(create=pb.WatchCreateRequest(topic=t, prefix=True)))
        w = stub.Watch(iter(q.get, None))
        assert next(w).HasField("created")
        watches.append(w)
        requests.append(q)
    # A third call on the same connection waits for a free stream: it cannot be served.
    try:
        stub.GetStatus(pb.GetStatusRequest(), timeout=2)
        raise AssertionError("a third stream was served past max_concurrent_streams")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e
    # Another connection is served; and once a stream ends, so is this one.
    assert c.stub.GetStatus(pb.GetStatusRequest(), timeout=5).ready
    watches[0].cancel()
    deadline_wait(lambda: _status_ok(stub), timeout=30, what="the queued call served")
    watches[1].cancel()
    for q in requests:
        q.put(None)
    channel.close()


def _status_ok(stub):
    try:
        return stub.GetStatus(pb.GetStatusRequest(), timeout=2).ready
    except grpc.RpcError:
        return False
