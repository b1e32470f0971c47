"""Reading an HTTP answer whose size a remote party decides: at most so many bytes, then stop."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


async def read_capped(response: httpx.Response, max_bytes: int) -> bytes | None:
    """The body of `response`, decompressed (so the cap holds for gzip bombs too); None past `max_bytes`.

    Past the cap the response is closed and the iteration left to end by itself (what was buffered,
    then a ReadError): leaving httpx's nested async generators suspended makes trio warn as it
    collects them (encode/httpx#3686).
    """
    import httpx

    body, over = bytearray(), False
    try:
        async for piece in response.aiter_bytes():
            if not over:
                body += piece
                over = len(body) > max_bytes
                if over:
                    await response.aclose()
    except httpx.HTTPError:
        if not over:
            raise
    return None if over else bytes(body)
