"""Several choices for one inference request (OpenAI's `n`): one request per choice, run at once.

    requests = choice_requests(request, n)                    # the seed told apart per choice
    replies = await all_choices(inference.chat_completion, requests)
    async for index, chunk in interleave(streams): ...        # n streams as one, round robin

On meta-reference each choice is its own sequence in the engine's continuous batch, so n choices
decode together, one batched forward per token for all of them. Greedy choices are identical; with
a seed, choice i samples from its own generator (seed i of the request's seed), so the choices
differ from each other and the same request gives the same choices again; choice 0 is the answer
the request alone would give.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio
import msgspec

from llama_core.errors import first_error

R = TypeVar("R")
T = TypeVar("T")

CHOICES_MAX = 128  # OpenAI's cap on `n`; past the batch's slots the choices wait for a free one
_GOLDEN = 0x9E3779B97F4A7C15  # 2^64 / golden ratio: consecutive choices get far-apart seeds


def choice_seed(seed: int | None, index: int) -> int | None:
    """The seed of choice `index`: `seed` itself for choice 0, else another int64 derived from it
    (None stays None: each choice then draws a random seed of its own)."""
    if seed is None or index == 0:
        return seed
    return (seed + index * _GOLDEN + 2**63) % 2**64 - 2**63


def choice_requests(request: R, n: int) -> list[R]:
    """`n` copies of `request` (a Struct with `sampling_params`), choice i with choice_seed(seed, i)."""
    sp = request.sampling_params  # type: ignore[attr-defined]
    return [
        msgspec.structs.replace(request, sampling_params=msgspec.structs.replace(sp, seed=choice_seed(sp.seed, i)))  # type: ignore[type-var]
        for i in range(n)
    ]


async def all_choices(call: Callable[[R], Awaitable[T]], requests: Sequence[R]) -> list[T]:
    """`call` on every request at once; the answers in request order. One choice's error is the
    whole request's (the others are cancelled), raised as itself."""
    results: list[Any] = [None] * len(requests)

    async def one(i: int) -> None:
        results[i] = await call(requests[i])

    try:
        async with anyio.create_task_group() as tg:
            for i in range(len(requests)):
                tg.start_soon(one, i)
    except BaseExceptionGroup as failed:
        raise first_error(failed) from None
    return results


async def interleave(streams: Sequence[AsyncIterator[T]]) -> AsyncIterator[tuple[int, T]]:
    """(index, item) from each stream in turn, one item each, until all have ended.

    The choices of one request decode in step, so taking turns sends their pieces as they come. All
    streams are closed on the way out (an error in one, or a reader that leaves): that cancels the
    choices still generating.
    """
    live = dict(enumerate(streams))
    try:
        while live:
            for i, stream in list(live.items()):
                try:
                    item = await anext(stream)
                except StopAsyncIteration:
                    del live[i]
                    continue
                yield i, item
    finally:
        for stream in streams:
            with contextlib.suppress(Exception):
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()
