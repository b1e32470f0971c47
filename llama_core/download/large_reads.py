"""One httpx transport whose sockets read 1 MiB at a time, for downloads.

httpcore asks its network backend for `HTTP11Connection.READ_NUM_BYTES` (64 KiB) per read: a class
attribute, so setting it would change every connection in the process. httpx's transport takes no
network backend of its own, so `large_reads` wraps the backend of one transport's pool (httpx's
private `_pool`, httpcore's `_network_backend`; tests/download/test_large_reads.py fails when
either goes). Without it a loopback download costs a third more CPU per byte: one recv, one h11
event and one file write per 64 KiB (benches/bench_download.py: ~0.8x curl's speed on two cores,
against ~1x with it).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

import httpcore

if TYPE_CHECKING:
    import httpx

READ_BYTES = 1 << 20  # per socket read


def large_reads(transport: httpx.HTTPTransport) -> httpx.HTTPTransport:
    """`transport`, each of its sockets' reads asking for READ_BYTES; returned for chaining.

    Where httpx or httpcore no longer have the attributes used, `transport` is returned as it was
    (downloads work, at 64 KiB per read), and the test named in the module docstring fails.
    """
    pool = getattr(transport, "_pool", None)  # httpx's own httpcore.ConnectionPool
    backend = getattr(pool, "_network_backend", None)
    if isinstance(pool, httpcore.ConnectionPool) and isinstance(backend, httpcore.NetworkBackend):
        pool._network_backend = LargeReadBackend(backend)
    return transport


class LargeReadStream(httpcore.NetworkStream):
    """A network stream whose reads ask for at least READ_BYTES."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self.inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # More than httpcore asked for is fine over HTTP/1.1: it hands every byte it reads to h11.
        return self.inner.read(max(max_bytes, READ_BYTES), timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, timeout)

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None) -> httpcore.NetworkStream:
        return LargeReadStream(self.inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class LargeReadBackend(httpcore.NetworkBackend):
    """A network backend whose streams are LargeReadStreams."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self.inner = inner

    def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return LargeReadStream(self.inner.connect_tcp(*args, **kwargs))

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return LargeReadStream(self.inner.connect_unix_socket(*args, **kwargs))

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)
