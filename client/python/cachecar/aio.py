"""The asyncio client: the same calls as cachecar.Client, awaited, and watches as async
iterators."""
import asyncio
import os
from typing import AsyncIterator, List, Optional

import grpc

from cachecar.client import (_RETRYABLE_CODES, Bytes, CachecarError, WatchEvent,
                             _auth_metadata, _b, _WatchState)
from cachecar.v1 import cache_pb2 as pb
from cachecar.v1 import cache_pb2_grpc


class AsyncClient:
    """As cachecar.Client (same arguments), for asyncio. Create it inside a running loop."""

    def __init__(self, address: Optional[str] = None, *, token: Optional[str] = None,
                 token_file: Optional[str] = None, timeout: float = 5.0):
        self.address = address or os.environ.get("CACHECAR_ADDRESS", "127.0.0.1:50051")
        self._metadata = _auth_metadata(token, token_file)
        self.timeout = timeout
        self._channel = grpc.aio.insecure_channel(self.address)
        self._stub = cache_pb2_grpc.CacheServiceStub(self._channel)

    async def close(self):
        await self._channel.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def _call(self, method, request, timeout):
        try:
            return await method(request, timeout=self.timeout if timeout is None else timeout,
                                metadata=self._metadata)
        except grpc.aio.AioRpcError as e:
            raise CachecarError.from_rpc_error(e) from None

    async def get(self, topic: str, key: Bytes, *, min_revision: int = 0,
                  allow_cold_cache: bool = False, original_value: bool = False,
                  timeout: Optional[float] = None):
        return await self._call(self._stub.Get, pb.GetRequest(
            topic=topic, key=_b(key), min_revision=min_revision,
            allow_cold_cache=allow_cold_cache, original_value=original_value), timeout)

    async def batch_get(self, topic: str, keys: List[Bytes], *, min_revision: int = 0,
                        allow_cold_cache: bool = False, original_value: bool = False,
                        timeout: Optional[float] = None):
        return await self._call(self._stub.BatchGet, pb.BatchGetRequest(
            topic=topic, keys=[_b(k) for k in keys], min_revision=min_revision,
            allow_cold_cache=allow_cold_cache, original_value=original_value), timeout)

    async def list(self, topic: str, prefix: Bytes = b"", *, limit: int = 0,
                   allow_cold_cache: bool = False, original_value: bool = False,
                   timeout: Optional[float] = None) -> AsyncIterator[pb.Entry]:
        token, n = "", 0
        while True:
            page = await self._call(self._stub.List, pb.ListRequest(
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

    async def status(self, timeout: Optional[float] = None):
        return await self._call(self._stub.GetStatus, pb.GetStatusRequest(), timeout)

    async def wait_ready(self, timeout: float = 60.0):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            try:
                return await self._call(self._stub.WaitReady, pb.WaitReadyRequest(),
                                        max(left, 0.01))
            except CachecarError as e:
                if e.code != grpc.StatusCode.UNAVAILABLE or left <= 0.2:
                    raise
                await asyncio.sleep(min(0.1, left))

    async def put(self, topic: str, key: Bytes, value: Bytes, *, ack_only: bool = False,
                  timeout: Optional[float] = None):
        return await self._call(self._stub.Put, pb.PutRequest(
            topic=topic, key=_b(key), value=_b(value), ack_only=ack_only), timeout)

    async def delete(self, topic: str, key: Bytes, *, ack_only: bool = False,
                     timeout: Optional[float] = None):
        return await self._call(self._stub.Delete, pb.DeleteRequest(
            topic=topic, key=_b(key), ack_only=ack_only), timeout)

    async def watch(self, topic: str, *, key: Optional[Bytes] = None,
                    prefix: Optional[Bytes] = None, snapshot: bool = False,
                    prev_entry: bool = False, from_revision: Optional[int] = None,
                    original_value: bool = False) -> AsyncIterator[WatchEvent]:
        """As Client.watch, as an async iterator; break out of it (or cancel the task) to
        end it."""
        if (key is None) == (prefix is None):
            raise ValueError("watch needs exactly one of key and prefix")
        st = _WatchState(topic, _b(key if key is not None else prefix), prefix is not None,
                         snapshot, prev_entry, from_revision, original_value)
        while True:
            call = self._stub.Watch(metadata=self._metadata)
            end = None
            try:
                await call.write(st.request())
                async for resp in call:
                    events, end = st.on_response(resp)
                    for ev in events:
                        yield ev
                    if end is not None:
                        break
            except grpc.aio.AioRpcError as e:
                if e.code() not in _RETRYABLE_CODES:
                    raise CachecarError.from_rpc_error(e) from None
                end = "backoff"
            finally:
                call.cancel()
            if isinstance(end, CachecarError):
                raise end
            if end == "backoff" or end is None:
                await asyncio.sleep(st.next_backoff())
