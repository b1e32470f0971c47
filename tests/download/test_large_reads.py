"""The download client's 1 MiB socket reads: on its own connections only, through httpx/httpcore internals that must still be there."""

from __future__ import annotations

import httpcore
import httpx

from download.cdn import FakeCDN
from download.conftest import FOLDER
from llama_core.download import FetchOptions
from llama_core.download.fetch import new_client
from llama_core.download.large_reads import READ_BYTES, LargeReadStream
from llama_core.download.meta import file_url

HTTPCORE_READ = 64 * 1024  # httpcore's own per-read size, left alone for every other client


class Asked:
    """A network stream that writes down the size of each read it is asked for."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self.inner = inner
        self.sizes: list[int] = []

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.sizes.append(max_bytes)
        return self.inner.read(max_bytes, timeout)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_the_download_client_reads_a_mib_at_a_time_and_no_other_client_does(cdn: FakeCDN, files: dict[str, bytes]) -> None:
    url = file_url(cdn.signed_url(), FOLDER, "consolidated.00.pth")
    with new_client(FetchOptions()) as client, client.stream("GET", url) as r:
        # Fails when httpx's HTTPTransport._pool or httpcore's ConnectionPool._network_backend is gone or renamed:
        # large_reads.py then leaves the transport as it was, and this stream is httpcore's own.
        stream = r.extensions["network_stream"]
        assert isinstance(stream, LargeReadStream)
        asked = stream.inner = Asked(stream.inner)
        body = b"".join(r.iter_raw())
    assert body == files["consolidated.00.pth"]
    assert asked.sizes and set(asked.sizes) == {READ_BYTES}
    assert httpcore.HTTP11Connection.READ_NUM_BYTES == HTTPCORE_READ
    with httpx.Client() as plain, plain.stream("GET", url) as r:
        assert not isinstance(r.extensions["network_stream"], LargeReadStream)
        assert b"".join(r.iter_raw()) == files["consolidated.00.pth"]
