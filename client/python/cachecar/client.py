"""The synchronous client. One Client per process is enough: it is thread-safe."""
import os
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Union

import grpc
from google.rpc import error_details_pb2, status_pb2

from cachecar.v1 import cache_pb2 as pb
from cachecar.v1 import cache_pb2_grpc

Bytes = Union[bytes, str]


def _b(v: Bytes) -> bytes:
    return v.encode() if isinstance(v, str) else v


@dataclass
class Violation:
    """One bad field: `field` ("key", "value/email"), `reason` (for schema violations the
    JSON Schema keyword, e.g. "format"), `description` for people."""
    field: str
    description: str
    reason: str = ""


class CachecarError(Exception):
    """An RPC failed. `code` is the gRPC status code, `reason` the sidecar's ErrorInfo
    reason (TOPIC_NOT_FOUND, SCHEMA_VIOLATION, CACHE_NOT_READY, ...), `violations` every bad
    field of a refused request, `metadata` the ErrorInfo metadata."""

    def __init__(self, code: grpc.StatusCode, message: str, reason: str = "",
                 violations: Optional[List[Violation]] = None, metadata: Optional[dict] = None):
        super().__init__(f"{code.name}: {message}" + (f" ({reason})" if reason else ""))
        self.code = code
        self.message = message
        self.reason = reason
        self.violations = violations or []
        self.metadata = metadata or {}

    @staticmethod
    def from_rpc_error(e: grpc.RpcError) -> "CachecarError":
        reason, violations, metadata = "", [], {}
        for key, value in (e.trailing_metadata() or ()):
            if key != "grpc-status-details-bin":
                continue
            status = status_pb2.Status.FromString(value)
            for any_ in status.details:
                info = error_details_pb2.ErrorInfo()
                bad = error_details_pb2.BadRequest()
                if any_.Unpack(info):
                    reason = info.reason
                    metadata = dict(info.metadata)
                elif any_.Unpack(bad):
                    violations = [Violation(v.field, v.description, v.reason)
                                  for v in bad.field_violations]
        return CachecarError(e.code(), e.details() or "", reason, violations, metadata)


@dataclass
class WatchEvent:
    """One item of a Watch.

    type: "PUT" or "DELETE" for a change (or, with snapshot=True, an entry of a snapshot);
    "RESET" when what the watch delivered before no longer applies (the sidecar's history
    no longer reaches back to it, or its store was rebuilt): drop your state, the entries
    of a new snapshot follow (snapshot=True), then changes again."""
    type: str
    key: bytes = b""
    value: Optional[bytes] = None
    revision: int = 0
    snapshot: bool = False
    prev_value: Optional[bytes] = None


def _auth_metadata(token: Optional[str], token_file: Optional[str]):
    """The call metadata carrying the token: given, or read from token_file (default
    $CACHECAR_TOKEN_FILE), less a trailing newline. Shared with the asyncio client."""
    token_file = token_file or os.environ.get("CACHECAR_TOKEN_FILE")
    if token is None and token_file:
        with open(token_file) as f:
            token = f.read().rstrip("\r\n")
    return (("authorization", f"Bearer {token}"),) if token else ()


_RETRYABLE_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL,
                    grpc.StatusCode.RESOURCE_EXHAUSTED}
_C = pb.WatchCanceled


class Client:
    """A client of one cachecar sidecar.

    address: "127.0.0.1:50051" (default: $CACHECAR_ADDRESS or that) or "unix:/path".
    token / token_file: sent as "authorization: Bearer <token>" when the sidecar requires
    one (default: the file named by $CACHECAR_TOKEN_FILE, if set).
    timeout: the deadline of every call, in seconds (each call may override it)."""

    def __init__(self, address: Optional[str] = None, *, token: Optional[str] = None,
                 token_file: Optional[str] = None, timeout: float = 5.0):
        self.address = address or os.environ.get("CACHECAR_ADDRESS", "127.0.0.1:50051")
        self._metadata = _auth_metadata(token, token_file)
        self.timeout = timeout
        self._channel = grpc.insecure_channel(self.address)
        self._stub = cache_pb2_grpc.CacheServiceStub(self._channel)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request, timeout):
        try:
            return method(request, timeout=self.timeout if timeout is None else timeout,
                          metadata=self._metadata)
        except grpc.RpcError as e:
            raise CachecarError.from_rpc_error(e) from None

    # Reads. A miss is found=False, never an error.
    def get(self, topic: str, key: Bytes, *, min_revision: int = 0,
            allow_cold_cache: bool = False, original_value: bool = False,
            timeout: Optional[float] = None) -> pb.GetResponse:
        return self._call(self._stub.Get, pb.GetRequest(
            topic=topic, key=_b(key), min_revision=min_revision,
            allow_cold_cache=allow_cold_cache, original_value=original_value), timeout)

    def batch_get(self, topic: str, keys: List[Bytes], *, min_revision: int = 0,
                  allow_cold_cache: bool = False, original_value: bool = False,
                  timeout: Optional[float] = None) -> pb.BatchGetResponse:
        return self._call(self._stub.BatchGet, pb.BatchGetRequest(
            topic=topic, keys=[_b(k) for k in keys], min_revision=min_revision,
            allow_cold_cache=allow_cold_cache, original_value=original_value), timeout)

    def list(self, topic: str, prefix: Bytes = b"", *, limit: int = 0,
             allow_cold_cache: bool = False, original_value: bool = False,
             timeout: Optional[float] = None) -> Iterator[pb.Entry]:
        """Every entry whose key starts with prefix, following pages (at most `limit`)."""
        token, n = "", 0
        while True:
            page = self._call(self._stub.List, pb.ListRequest(
                topic=topic, prefix=_b(prefix), page_size=1000, page_token=token,
                allow_cold_cache=allow_cold_cache, original_value=original_value), timeout)
            for e in page.entries:
                yield e
                n += 1
                if limit and n >= limit:
                    return
            token = page.next_page_token
            if not token:
                return

    def status(self, timeout: Optional[float] = None) -> pb.GetStatusResponse:
        return self._call(self._stub.GetStatus, pb.GetStatusRequest(), timeout)

    def wait_ready(self, timeout: float = 60.0) -> pb.WaitReadyResponse:
        """Waits until the sidecar is ready, at most `timeout` seconds (ready=False and the
        reason then). A sidecar that is not reachable yet (starting) is waited for too."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                return self._call(self._stub.WaitReady, pb.WaitReadyRequest(), max(left, 0.01))
            except CachecarError as e:
                if e.code != grpc.StatusCode.UNAVAILABLE or left <= 0.2:
                    raise
                time.sleep(min(0.1, left))

    # Writes go through the topic; by default they return once this sidecar applied them.
    def put(self, topic: str, key: Bytes, value: Bytes, *, ack_only: bool = False,
            timeout: Optional[float] = None) -> pb.PutResponse:
        return self._call(self._stub.Put, pb.PutRequest(
            topic=topic, key=_b(key), value=_b(value), ack_only=ack_only), timeout)

    def delete(self, topic: str, key: Bytes, *, ack_only: bool = False,
               timeout: Optional[float] = None) -> pb.DeleteResponse:
        return self._call(self._stub.Delete, pb.DeleteRequest(
            topic=topic, key=_b(key), ack_only=ack_only), timeout)

    def watch(self, topic: str, *, key: Optional[Bytes] = None, prefix: Optional[Bytes] = None,
              snapshot: bool = False, prev_entry: bool = False,
              from_revision: Optional[int] = None, original_value: bool = False) -> "Watch":
        """Changes to one key or every key with a prefix, resumed by itself after a
        disconnect or a sidecar restart; see WatchEvent for RESET. Iterate it; close() ends
        it (from any thread). The stream opens on the first iteration: changes start after
        `from_revision` if given (e.g. a store_revision you read), else after whatever the
        store's revision is then."""
        if (key is None) == (prefix is None):
            raise ValueError("watch needs exactly one of key and prefix")
        return Watch(self, topic, _b(key if key is not None else prefix), prefix is not None,
                     snapshot, prev_entry, from_revision, original_value)


class _WatchState:
    """What a resuming watch knows between connections: where to resume, and whether the
    next connection must start over from a snapshot. Shared by the sync and async clients."""

    def __init__(self, topic, key, prefix, snapshot, prev_entry, from_revision=None,
                 original_value=False):
        self.topic, self.key, self.prefix = topic, key, prefix
        self.snapshot, self.prev = snapshot, prev_entry
        self.original = original_value
        self.revision = from_revision or 0  # the last revision delivered: resumes start here
        self.store_id = ""
        self.started = from_revision is not None  # a resume point exists
        self.reset = False    # RESET is owed before the next snapshot
        self.backoff = 0.05

    def request(self) -> pb.WatchRequest:
        create = pb.WatchCreateRequest(watch_id=1, topic=self.topic, key=self.key,
                                       prefix=self.prefix, snapshot=self.snapshot,
                                       prev_entry=self.prev, original_value=self.original)
        if self.started and not self.snapshot:
            create.resume_revision = self.revision
            create.store_id = self.store_id
        return pb.WatchRequest(create=create)

    def next_backoff(self) -> float:
        d = self.backoff * (0.5 + random.random())
        self.backoff = min(self.backoff * 2, 2.0)
        return d

    def on_response(self, resp):
        """Returns (events to deliver, end) where end is None (go on), "reconnect" or a
        CachecarError to raise."""
        out = []
        kind = resp.WhichOneof("kind")
        if kind == "created":
            self.backoff = 0.05
            self.store_id = resp.created.store_id
            if not self.started:
                self.revision = resp.created.revision
            if self.reset:
                out.append(WatchEvent("RESET"))
                self.reset = False
            if not self.snapshot:
                self.started = True
        elif kind == "snapshot":
            out = [WatchEvent("PUT", e.key, e.value, e.revision, snapshot=True)
                   for e in resp.snapshot.entries]
        elif kind == "snapshot_end":
            self.revision = resp.snapshot_end.revision
            self.started, self.snapshot = True, False
        elif kind == "events":
            for ev in resp.events.events:
                self.revision = ev.revision
                put = ev.type == pb.WatchEvent.PUT
                out.append(WatchEvent(
                    "PUT" if put else "DELETE", ev.entry.key, ev.entry.value if put else None,
                    ev.revision,
                    prev_value=ev.prev_entry.value if ev.HasField("prev_entry") else None))
        elif kind == "progress":
            self.revision = max(self.revision, resp.progress.revision)
        elif kind == "canceled":
            c = resp.canceled
            self.revision = max(self.revision, c.last_revision)
            if c.reason in (_C.HISTORY_COMPACTED, _C.STORE_CHANGED):
                # Too old, or another store: start over from a snapshot.
                self.snapshot, self.reset, self.started = True, True, False
                return out, "reconnect"
            if c.reason in (_C.INVALID_REQUEST, _C.LIMIT_EXCEEDED, _C.WATCH_ID_IN_USE,
                            _C.CANCELED_BY_CLIENT):
                return out, CachecarError(grpc.StatusCode.FAILED_PRECONDITION, c.message,
                                          _C.Reason.Name(c.reason))
            return out, "backoff"  # SHUTTING_DOWN, SLOW_CONSUMER, CACHE_NOT_READY, INTERNAL
        return out, None


class Watch:
    """A Watch that resumes by itself (see Client.watch). Iterate it on one thread;
    close() may be called from any thread."""

    def __init__(self, client: Client, topic: str, key: bytes, prefix: bool, snapshot: bool,
                 prev_entry: bool, from_revision: Optional[int] = None,
                 original_value: bool = False):
        self._client = client
        self._state = _WatchState(topic, key, prefix, snapshot, prev_entry, from_revision,
                                  original_value)
        self._closed = threading.Event()
        self._call = None

    @property
    def revision(self) -> int:
        return self._state.revision

    def close(self):
        self._closed.set()
        if self._call is not None:
            self._call.cancel()

    def __iter__(self):
        return self._events()

    def _events(self) -> Iterator[WatchEvent]:
        st = self._state
        while not self._closed.is_set():
            requests = queue.Queue()
            requests.put(st.request())
            self._call = self._client._stub.Watch(iter(requests.get, None),
                                                  metadata=self._client._metadata)
            if self._closed.is_set():
                self._call.cancel()
            end = None
            try:
                for resp in self._call:
                    events, end = st.on_response(resp)
                    yield from events
                    if end is not None:
                        break
            except grpc.RpcError as e:
                if self._closed.is_set():
                    return
                if e.code() not in _RETRYABLE_CODES:
                    raise CachecarError.from_rpc_error(e) from None
                end = "backoff"
            finally:
                requests.put(None)
                self._call.cancel()
            if isinstance(end, CachecarError):
                raise end
            if end == "backoff" or end is None:  # None: the stream ended without a cancel
                self._closed.wait(st.next_backoff())
