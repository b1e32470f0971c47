"""The HTTP server over a real Stack (meta-reference on the tiny checkpoint), in this process.

What only the real engine shows: a client that goes away mid-stream cancels its sequence in the
workers at once (its batch slot is free again), and the server goes on serving; a request the
worker cannot serve fails alone; /health follows a worker crash and the restart.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rpc.server import serving_spied

from llama_core.config import RunConfig
from llama_core.engine.messages import Cancel
from llama_core.stack import Stack

pytest.importorskip("torch")

MODEL = "Llama3.2-1B-Instruct"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, list[Any]]]:
    """(base URL, the worker group, every message the server sent to the workers)."""
    from engine.tiny_checkpoint import write_tiny_checkpoint

    ckpt = write_tiny_checkpoint(tmp_path_factory.mktemp("http-engine") / "tiny")
    inference = {"provider_id": "meta-reference", "model": MODEL, "checkpoint_dir": str(ckpt), "max_seq_len": 512,
                 "max_batch_size": 2, "dtype": "fp32", "device": "cpu"}  # fmt: skip
    stack = Stack.from_config(RunConfig(name="tiny", distribution_id="local", providers={"inference": inference}))
    with serving_spied(stack) as served:
        yield served


def test_disconnect_mid_stream_cancels_the_sequence(served: tuple[str, Any, list[Any]]) -> None:
    url, group, sent = served
    body = {"model": MODEL, "messages": [{"role": "user", "content": "go on"}], "stream": True,
            "sampling_params": {"max_tokens": 400}}  # fmt: skip
    with httpx.stream("POST", url + "/inference/chat_completion", json=body, timeout=60) as response:
        lines = response.iter_lines()
        assert next(lines).startswith('data: {"event":{"event_type":"start"')  # sent before submitting
        assert next(line for line in lines if line).startswith('data: {"event":{"event_type":"progress"')
        assert len(group._inflight) == 1
    deadline = time.monotonic() + 2.0  # 400 tokens take several seconds here: a cancel is far sooner
    while group._inflight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert group._inflight == {}
    assert any(isinstance(m, Cancel) for m in sent)
    reply = httpx.post(url + "/inference/chat_completion", json={**body, "stream": False, "sampling_params": {"max_tokens": 2}})
    assert reply.status_code == 200


def test_a_finished_stream_sends_no_cancel(served: tuple[str, Any, list[Any]]) -> None:
    url, group, sent = served
    before = len(sent)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True, "sampling_params": {"max_tokens": 3}}
    text = httpx.post(url + "/inference/chat_completion", json=body, timeout=60).text
    counts = '[{"metric":"prompt_tokens","value":11,"unit":null},{"metric":"completion_tokens","value":3,"unit":null},' \
        '{"metric":"total_tokens","value":14,"unit":null}]'
    assert text.rstrip().endswith('"stop_reason":"out_of_tokens"},"metrics":' + counts + "}")
    assert not any(isinstance(m, Cancel) for m in sent[before:])
    assert group._inflight == {}


def test_path_of_the_checkpoint_is_not_leaked_in_errors(served: tuple[str, Any, list[Any]], tmp_path: Path) -> None:
    url, _, _ = served
    reply = httpx.post(url + "/inference/completion", json={"model": MODEL, "content": "x" * 5000}, timeout=60)
    assert reply.status_code == 400
    assert str(tmp_path.parent) not in reply.text and "Traceback" not in reply.text


CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "sampling_params": {"max_tokens": 6}}


def chat(url: str, **fields: Any) -> httpx.Response:
    return httpx.post(url + "/inference/chat_completion", json={**CHAT, **fields}, timeout=60)


def test_a_seed_the_engine_cannot_take_fails_alone(served: tuple[str, Any, list[Any]]) -> None:
    url, group, _ = served
    before = chat(url)
    assert before.status_code == 200
    bad = chat(url, sampling_params={"max_tokens": 6, "seed": 2**70})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "sampling_params.seed"
    assert "Traceback" not in bad.text
    oai = httpx.post(url + "/v1/chat/completions", json={"model": MODEL, "messages": CHAT["messages"], "seed": 2**70}, timeout=60)
    assert oai.status_code == 400 and "Traceback" not in oai.text
    after = chat(url)
    assert (after.status_code, after.json()) == (200, before.json())  # same worker, same greedy answer
    assert group.restarts == 0


def wait_for_health(url: str, status: int, timeout: float) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while (response := httpx.get(url + "/health", timeout=10)).status_code != status:
        assert time.monotonic() < deadline, response.text
        time.sleep(0.02)
    return response


def test_health_and_requests_while_the_worker_restarts(served: tuple[str, Any, list[Any]]) -> None:
    url, group, _ = served
    healthy = {"status": "OK", "apis": {"inference": {"status": "ok", "restarts": 0}, "models": {"status": "ok"}}}
    assert wait_for_health(url, 200, 10).json() == healthy
    before = chat(url)
    os.kill(group.pids[0], signal.SIGKILL)
    report = wait_for_health(url, 503, 30).json()
    assert report["apis"]["inference"].pop("retry_after") >= 1
    assert report == {"status": "Error", "apis": {"inference": {"status": "restarting", "restarts": 1}, "models": {"status": "ok"}}}
    for refused in (chat(url), chat(url, stream=True)):  # a stream too: a 503, not an error event after a 200
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"]["message"].startswith("The inference engine is restarting after a worker crash; retry in ")
    healthy["apis"]["inference"]["restarts"] = 1
    assert wait_for_health(url, 200, 120).json() == healthy
    after = chat(url)
    assert (after.status_code, after.json()) == (200, before.json())
