"""Server-sent events as a client reads them: the `data` of each event, up to `[DONE]`.

The one SSE parser of the library: a stack's chunk streams (llama_core/client.py) and an
OpenAI-compatible vendor's (providers/inference/openai_compat.py) both read through it.

Not httpx-sse: its public API reads the response itself, where both callers read lines from their
own iterators (the vendor's turns a cut connection into a ProviderError), and it drops a last event
that no blank line ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

DONE = "[DONE]"


async def read_to_end(lines: AsyncIterator[str]) -> None:
    """Read and drop what is left of `lines`."""
    async for _ in lines:
        pass


async def iter_sse_data(
    lines: AsyncIterator[str], drain: Callable[[AsyncIterator[str]], Awaitable[None]] = read_to_end
) -> AsyncIterator[str]:
    """The `data` of each event of `lines` (multi-line data joined with "\\n"), up to `[DONE]`.

    Comments, `event:`, `id:` and `retry:` lines are skipped; a last event with no blank line after
    it still counts. After `[DONE]`, `drain(lines)` reads what is left: the stream ends right after
    it, and reading to the end finishes `lines` (an unfinished async generator is a warning under
    trio). A caller for whom a connection cut after `[DONE]` is no error passes a `drain` that says so.
    """
    data: list[str] = []
    async for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and data:
            event, data = "\n".join(data), []
            if event.strip() == DONE:
                await drain(lines)
                return
            yield event
    if data and "\n".join(data).strip() != DONE:
        yield "\n".join(data)
