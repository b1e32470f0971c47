"""The worker process group: tokens over the pipe, concurrency, cancellation, a request the worker
cannot serve, dead workers and restarts, bad checkpoints and specs."""

from __future__ import annotations

import logging
import math
import os
import signal
from pathlib import Path

import anyio
import pytest

from llama_core.engine.generation import Batch
from llama_core.engine.checkpoint import load_model
from llama_core.engine.group import WorkerGroup
from llama_core.engine.messages import GenParams, WorkerSpec
from llama_core.errors import CheckpointError, InvalidRequestError, LlamaError, UnavailableError

from engine.solo import generate

pytestmark = pytest.mark.anyio

PROMPTS = [[128000, 9906, 1917], [128000, 791, 6864, 315, 9822, 374], [128000, 40], [128000, 1687, 1093, 311]]


def spec(ckpt: Path, **kw: object) -> WorkerSpec:
    return WorkerSpec(**{"ckpt_dir": str(ckpt), "max_seq_len": 64, "max_batch_size": 4, "threads": 1, **kw})  # type: ignore[arg-type]


def solo_greedy(ckpt: Path, prompt: list[int], n: int, max_seq_len: int = 64) -> list[int]:
    model, _ = load_model(ckpt, max_seq_len=max_seq_len, max_batch_size=1)
    return [r.token for r in generate(model, prompt, GenParams(max_tokens=n))]


async def collect(group: WorkerGroup, prompt: list[int], n: int) -> list[int]:
    return await run(group, prompt, GenParams(max_tokens=n))


async def run(group: WorkerGroup, prompt: list[int], params: GenParams) -> list[int]:
    async with group.generate(prompt, params) as tokens:
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


async def wait_for_state(group: WorkerGroup, state: str) -> None:
    with anyio.fail_after(120):  # a restart is a fresh process importing torch: seconds on a loaded machine
        while group.state != state:
            await anyio.sleep(0.02)


async def test_killed_worker_fails_its_request_then_restarts(tiny_ckpt: Path) -> None:
    async with WorkerGroup(spec(tiny_ckpt)) as group:
        (pid,) = group.pids
        with pytest.raises(UnavailableError, match="restarting"):
            async with group.generate(PROMPTS[0], GenParams(max_tokens=60)) as tokens:
                async for _out in tokens:
                    os.kill(pid, signal.SIGKILL)
        assert group.state == "restarting"
        with pytest.raises(UnavailableError, match=r"^The inference engine is restarting after a worker crash; retry in \d+ s.$") as refused:
            await collect(group, PROMPTS[3], 6)  # at once, not after the restart
        assert refused.value.retry_after >= 1
        await wait_for_state(group, "ready")
        assert await collect(group, PROMPTS[3], 6) == solo_greedy(tiny_ckpt, PROMPTS[3], 6)
        assert group.pids != [pid] and group.restarts == 1


async def test_a_replacement_killed_while_loading_is_restarted_again(tiny_ckpt: Path) -> None:
    async with WorkerGroup(spec(tiny_ckpt)) as group:
        (first,) = group.pids
        os.kill(first, signal.SIGKILL)
        with anyio.fail_after(60):
            while group.pids in ([], [first]):  # the backoff, then the replacement is spawned
                await anyio.sleep(0.01)
        (second,) = group.pids
        os.kill(second, signal.SIGKILL)  # still importing torch: long before Ready
        assert group.state == "restarting"
        await wait_for_state(group, "ready")
        assert group.pids not in ([first], [second]) and group.restarts == 2
        assert await collect(group, PROMPTS[2], 6) == solo_greedy(tiny_ckpt, PROMPTS[2], 6)


def test_the_restart_backoff_doubles_to_a_cap_and_resets_after_a_stable_stretch() -> None:
    group = WorkerGroup(WorkerSpec(ckpt_dir="unused"))
    group._tmpdir.cleanup()  # never started
    group._ready_at = now = 1000.0
    delays = [group._next_backoff(now) for _ in range(9)]  # crash after crash, none of them ever ready
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    group._ready_at = now  # ready again, and up for a minute: the next crash starts over
    assert group._next_backoff(now + 60.0) == 0.5
    group._ready_at = now = now + 60.0  # ready, but it crashes within the minute: the doubling goes on
    assert group._next_backoff(now + 5.0) == 1.0


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


async def test_a_seed_the_engine_cannot_take_fails_alone_mid_batch(tiny_ckpt: Path) -> None:
    expected = solo_greedy(tiny_ckpt, PROMPTS[1], 300, max_seq_len=512)
    async with WorkerGroup(spec(tiny_ckpt, max_seq_len=512)) as group:
        (pid,) = group.pids
        async with group.generate(PROMPTS[1], GenParams(max_tokens=300)) as tokens:
            got = [(await tokens.__anext__()).token]  # live in the batch while the bad one arrives
            with pytest.raises(InvalidRequestError, match=r"^The seed does not fit in 64 bits; use an integer from ") as bad:
                await run(group, PROMPTS[0], GenParams(max_tokens=5, seed=2**70))
            assert bad.value.field == "sampling_params.seed"
            with pytest.raises(InvalidRequestError, match=r"^logprobs asks for the top 1000000 tokens of a 128256-token vocabulary.$") as bad:
                await run(group, PROMPTS[0], GenParams(max_tokens=5, logprobs=10**6))
            assert bad.value.field == "logprobs.top_k"
            assert len(group._inflight) == 1  # their failures came before the other's last token: they overlapped
            got += [out.token async for out in tokens]
        assert got == expected
        assert await run(group, PROMPTS[1], GenParams(max_tokens=300)) == expected  # the same greedy output after
        assert group.pids == [pid] and group.restarts == 0 and group.state == "ready"


async def test_an_engine_failure_is_one_line_for_its_request_and_the_traceback_goes_to_the_log(
    tiny_ckpt: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # NaN as a repetition penalty turns the sampler's probabilities into NaN: torch.multinomial raises.
    broken = GenParams(max_tokens=5, temperature=1.0, repetition_penalty=math.nan)
    async with WorkerGroup(spec(tiny_ckpt)) as group:
        (pid,) = group.pids
        with caplog.at_level(logging.ERROR, "llama_core.engine.group"):
            for _ in range(5):  # more than the batch's 4 slots: each failure gave its slot back
                with pytest.raises(LlamaError) as failed:
                    await run(group, PROMPTS[0], broken)
                assert type(failed.value) is LlamaError and failed.value.status == 500
                assert failed.value.message == (
                    "The inference engine failed on this request (RuntimeError); the server log has the details."
                )
        assert "Traceback (most recent call last)" in caplog.text and "multinomial" in caplog.text
        assert await collect(group, PROMPTS[2], 6) == solo_greedy(tiny_ckpt, PROMPTS[2], 6)
        assert group.pids == [pid] and group.restarts == 0


def fails_mid_generation(ckpt: Path, params: GenParams) -> list[int]:
    """A one-token prompt whose first token samples fine but a later step raises, found in-process:
    with repetition_penalty 0 a seen id with a positive logit becomes inf, and the draw raises."""
    model, _ = load_model(ckpt, max_seq_len=64, max_batch_size=1)
    for token in range(128000, 128100):
        batch = Batch(model)
        try:
            batch.add(0, [token], params)
        except RuntimeError:
            continue  # fails at once: not mid-generation
        failed: list[Exception] = []
        for _ in range(5):
            batch.step(on_error=lambda _seq_id, e: failed.append(e))
        if failed:
            return [token]
    raise AssertionError("no prompt fails mid-generation on this checkpoint")


async def test_a_row_whose_sampling_fails_mid_batch_leaves_the_other_rows(tiny_ckpt: Path) -> None:
    bad_params = GenParams(max_tokens=10, temperature=1.0, repetition_penalty=0.0, seed=1)
    bad_prompt = fails_mid_generation(tiny_ckpt, bad_params)
    expected = solo_greedy(tiny_ckpt, PROMPTS[3], 300, max_seq_len=512)
    async with WorkerGroup(spec(tiny_ckpt, max_seq_len=512)) as group:
        async with group.generate(PROMPTS[3], GenParams(max_tokens=300)) as good:
            got = [(await good.__anext__()).token]
            bad_tokens: list[int] = []
            with pytest.raises(LlamaError, match=r"^The inference engine failed on this request \(RuntimeError\)"):
                async with group.generate(bad_prompt, bad_params) as bad:
                    async for out in bad:
                        bad_tokens.append(out.token)
            assert bad_tokens  # it failed in a step of the batch, after its first token
            assert len(group._inflight) == 1  # while the other row was still decoding
            got += [out.token async for out in good]
        assert got == expected
        assert group.restarts == 0


def test_a_spec_the_engine_cannot_run_is_refused_before_anything_starts(tiny_ckpt: Path) -> None:
    with pytest.raises(InvalidRequestError, match=r"^dtype 'fp16' is not supported; choose one of fp32, bf16, int8, gguf.$") as e:
        spec(tiny_ckpt, dtype="fp16")
    assert e.value.field == "dtype"
    with pytest.raises(InvalidRequestError, match=r"^max_batch_size must be at least 1, got 0.$"):
        spec(tiny_ckpt, max_batch_size=0)
    with pytest.raises(InvalidRequestError, match=r"^device 'tpu' is not supported; choose one of cpu, cuda, mps \(or cuda:N\).$"):
        spec(tiny_ckpt, device="tpu")


def test_a_rank_sets_a_short_openmp_spin_unless_the_user_chose_one() -> None:
    """The rank's OpenMP wait (worker.OPENMP_DEFAULTS) is set before libgomp loads: importing the
    worker, as a spawned rank does before worker_main runs, must not load torch."""
    import subprocess
    import sys

    from llama_core.engine.worker import openmp_environment

    assert openmp_environment({"PATH": "/bin"}) == {"GOMP_SPINCOUNT": "2000"}
    assert openmp_environment({"OMP_WAIT_POLICY": "active"}) == {}
    assert openmp_environment({"GOMP_SPINCOUNT": "300000"}) == {}
    probe = "import sys, llama_core.engine.worker; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout == "[]\n"
