"""The worker process group: tokens over the pipe, concurrency, cancellation, a dead worker, bad checkpoints."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest

from llama_core.engine.checkpoint import load_model
from llama_core.engine.group import WorkerGroup
from llama_core.engine.messages import GenParams, WorkerSpec
from llama_core.errors import CheckpointError, InvalidRequestError, UnavailableError

from engine.solo import generate

pytestmark = pytest.mark.anyio

PROMPTS = [[128000, 9906, 1917], [128000, 791, 6864, 315, 9822, 374], [128000, 40], [128000, 1687, 1093, 311]]


def spec(ckpt: Path, **kw: object) -> WorkerSpec:
    return WorkerSpec(ckpt_dir=str(ckpt), max_seq_len=64, max_batch_size=4, threads=1, **kw)  # type: ignore[arg-type]


def solo_greedy(ckpt: Path, prompt: list[int], n: int) -> list[int]:
    model, _ = load_model(ckpt, max_seq_len=64, max_batch_size=1)
    return [r.token for r in generate(model, prompt, GenParams(max_tokens=n))]


async def collect(group: WorkerGroup, prompt: list[int], n: int) -> list[int]:
    async with group.generate(prompt, GenParams(max_tokens=n)) as tokens:
        return [out.token async for out in tokens]


async def test_concurrent_requests_match_solo_greedy(tiny_ckpt: Path) -> None:
    expected = [solo_greedy(tiny_ckpt, p, 12) for p in PROMPTS]
    results: dict[int, list[int]] = {}
    async with WorkerGroup(spec(tiny_ckpt)) as group:
        assert await collect(group, PROMPTS[0], 12) == expected[0]

        async def one(i: int) -> None:
            results[i] = await collect(group, PROMPTS[i % 4], 12)

        async with anyio.create_task_group() as tg:
            for i in range(6):  # more than max_batch_size: the rest wait for a free slot
                tg.start_soon(one, i)
    assert [results[i] for i in range(6)] == [expected[i % 4] for i in range(6)]


async def test_cancel_frees_the_slot_and_errors_are_per_request(tiny_ckpt: Path) -> None:
    async with WorkerGroup(spec(tiny_ckpt)) as group:
        for _ in range(6):  # each abandoned sequence must give its slot back (batch of 4)
            async with group.generate(PROMPTS[1], GenParams(max_tokens=50)) as tokens:
                async for _out in tokens:
                    break
        with pytest.raises(InvalidRequestError, match="max_seq_len"):
            await collect(group, [128000] * 80, 4)
        assert len(await collect(group, PROMPTS[2], 5)) == 5


async def test_killed_worker_fails_its_request_then_restarts(tiny_ckpt: Path) -> None:
    async with WorkerGroup(spec(tiny_ckpt)) as group:
        (pid,) = group.pids
        with pytest.raises(UnavailableError, match="restarting"):
            async with group.generate(PROMPTS[0], GenParams(max_tokens=60)) as tokens:
                async for _out in tokens:
                    os.kill(pid, signal.SIGKILL)
        assert await collect(group, PROMPTS[3], 6) == solo_greedy(tiny_ckpt, PROMPTS[3], 6)
        assert group.pids != [pid]


async def test_model_parallel_2_matches_1(tiny_ckpt_mp2: Path, tiny_ckpt: Path) -> None:
    async with WorkerGroup(spec(tiny_ckpt_mp2, world_size=2)) as group:
        tokens = await collect(group, PROMPTS[1], 10)
    assert tokens == solo_greedy(tiny_ckpt, PROMPTS[1], 10)


async def test_corrupt_checkpoint_is_one_clear_error(tmp_path: Path, tiny_ckpt: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in tiny_ckpt.iterdir():
        (bad / f.name).write_bytes(f.read_bytes()[:100] if f.suffix == ".pth" else f.read_bytes())
    with pytest.raises(CheckpointError):
        async with WorkerGroup(spec(bad)):
            pass



async def test_a_worker_killed_while_loading_is_not_restarted_in_a_loop(tiny_ckpt: Path) -> None:
    group = WorkerGroup(spec(tiny_ckpt))

    async def kill_while_loading() -> None:
        while not group.pids:  # spawned, still importing torch: long before Ready
            await anyio.sleep(0.01)
        os.kill(group.pids[0], signal.SIGKILL)

    async with anyio.create_task_group() as tg:
        tg.start_soon(kill_while_loading)
        with pytest.raises(UnavailableError, match="could not start"):
            async with group:
                pass
