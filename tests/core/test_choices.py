"""llama_core.choices: n requests from one, run at once; n streams as one, closed together."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from llama_core.choices import all_choices, choice_requests, choice_seed, interleave
from llama_core.errors import InvalidRequestError
from llama_core.types import SamplingParams
from llama_core.types.inference import CompletionRequest

pytestmark = pytest.mark.anyio


def test_choice_requests_differ_only_in_their_seed() -> None:
    request = CompletionRequest(model="m", content="hi", sampling_params=SamplingParams(seed=-5, max_tokens=3, stop=["x"]))
    requests = choice_requests(request, 3)
    assert [r.sampling_params.seed for r in requests] == [-5, choice_seed(-5, 1), choice_seed(-5, 2)]
    assert requests[0] == request and len({r.sampling_params.seed for r in requests}) == 3
    assert {(r.model, r.content, r.sampling_params.max_tokens, tuple(r.sampling_params.stop)) for r in requests} == {("m", "hi", 3, ("x",))}
    assert choice_seed(2**63 - 1, 1) == (2**63 - 1 + 0x9E3779B97F4A7C15 + 2**63) % 2**64 - 2**63  # stays in int64


async def test_all_choices_run_at_once_and_fail_as_the_failing_one() -> None:
    running, most = 0, 0

    async def call(i: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await anyio.sleep(0.01)
        running -= 1
        if i == 2:
            raise InvalidRequestError("bad choice", field="x")
        return i * 10

    assert await all_choices(call, [0, 1]) == [0, 10] and most == 2
    with pytest.raises(InvalidRequestError, match="^bad choice$"):  # itself, not an exception group
        await all_choices(call, [0, 1, 2])


async def test_interleave_takes_turns_and_closes_every_stream() -> None:
    closed: list[str] = []

    async def letters(name: str, n: int) -> AsyncIterator[str]:
        try:
            for i in range(n):
                yield f"{name}{i}"
        finally:
            closed.append(name)

    merged = interleave([letters("a", 3), letters("b", 1), letters("c", 2)])
    assert [item async for item in merged] == [(0, "a0"), (1, "b0"), (2, "c0"), (0, "a1"), (2, "c1"), (0, "a2")]
    assert sorted(closed) == ["a", "b", "c"]

    closed.clear()
    merged = interleave([letters("a", 5), letters("b", 5)])
    assert [await anext(merged), await anext(merged)] == [(0, "a0"), (1, "b0")]
    await merged.aclose()  # a reader that leaves: the choices still going are closed (their sequences cancelled)
    assert sorted(closed) == ["a", "b"]
