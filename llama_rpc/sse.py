"""Server-sent events: an async iterator of chunks -> `data: <json>\\n\\n` byte strings.

The provider's iterator is always closed, whether the stream ends, fails or the client goes away
(the server cancels the body task, which closes this generator): closing it is what frees the
engine's batch slot at once. An error after the first byte cannot change the status any more, so it
becomes one last event `data: {"error": {...}}`, as the original server sent it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()

DONE = b"data: [DONE]\n\n"


def sse_event(data: bytes) -> bytes:
    """One event whose data is `data` (JSON never holds a raw newline, so one `data:` line)."""
    return b"data: " + data + b"\n\n"


@contextlib.asynccontextmanager
async def closing(iterator: Any) -> AsyncIterator[Any]:
    """Close `iterator` on the way out if it can be closed (async generators can)."""
    try:
        yield iterator
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


async def sse_stream(
    items: AsyncIterator[Any],
    error_body: Callable[[BaseException], tuple[int, dict[str, Any]]],
    done: bool = False,
) -> AsyncIterator[bytes]:
    """Encode each item (a Struct or plain data) as one event; an error becomes a last error event.

    `done` adds OpenAI's closing `data: [DONE]` line (off by default: llama-stack-client cannot
    parse it, and the openai client does not need it).
    """
    try:
        async with closing(items):
            async for item in items:
                yield sse_event(_encoder.encode(item))
    except Exception as error:  # noqa: BLE001 -- any failure must end the stream readably
        yield sse_event(_encoder.encode(error_body(error)[1]))
    if done:
        yield DONE
