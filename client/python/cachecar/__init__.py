"""cachecar: the client for the cachecar sidecar (a local, always-current copy of Kafka
topics, served over gRPC). `Client` is synchronous; `cachecar.aio.AsyncClient` is the
asyncio one. Both wait for readiness, give every call a deadline, raise CachecarError with
the sidecar's reason and every field violation, and resume watches by themselves."""
from cachecar.client import CachecarError, Client, Violation, Watch, WatchEvent

__all__ = ["CachecarError", "Client", "Violation", "Watch", "WatchEvent"]
