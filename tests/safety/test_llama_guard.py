"""Llama Guard, the whole path over HTTP: prompt -> meta-reference engine -> verdict, on a tiny guard
the tests train (guard_checkpoint.py) to answer `safe` and `unsafe\\nS9`, and on an untrained one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import serve, write_guard_config
from .guard_checkpoint import BENIGN, HARMFUL

pytest.importorskip("torch")

GUARD = [{"shield_type": "llama_guard"}]
SAFE = {"shield_type": "llama_guard", "is_violation": False, "violation_type": None, "violation_return_message": None}
S9 = {"shield_type": "llama_guard", "is_violation": True, "violation_type": "S9",
      "violation_return_message": "I can't answer that. Can I help with something else?"}  # fmt: skip


def judge(url: str, *messages: dict, shields: list[dict] = GUARD) -> httpx.Response:
    return httpx.post(url + "/safety/run_shields", json={"messages": list(messages), "shields": shields}, timeout=120)


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def test_the_guard_says_safe_and_unsafe_s9(guard_url: str) -> None:
    assert judge(guard_url, user(BENIGN)).json() == {"responses": [SAFE]}
    assert judge(guard_url, user(HARMFUL)).json() == {"responses": [S9]}
    # both at once, beside a WARN and an IGNORE of the same verdict
    shields = [{"shield_type": "llama_guard", "on_violation_action": a} for a in (2, 1, 0)]
    assert judge(guard_url, user(HARMFUL), shields=shields).json() == {"responses": [S9, S9, {**S9, "is_violation": False}]}


@pytest.fixture(scope="module")
def without_s9_url(guard_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = write_guard_config(tmp_path_factory.mktemp("no-s9") / "no-s9.toml", guard_ckpt, excluded_categories=["S9"])
    yield from serve(config)


def test_with_s9_excluded_the_harmful_message_is_safe(without_s9_url: str) -> None:
    # The guard still answers `unsafe\nS9` (it learnt to, without S9 in the prompt too): the exclusion decides.
    assert judge(without_s9_url, user(HARMFUL)).json() == {"responses": [SAFE]}


@pytest.fixture(scope="module")
def untrained_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from engine.tiny_checkpoint import write_tiny_checkpoint

    root = tmp_path_factory.mktemp("untrained")
    ckpt = write_tiny_checkpoint(root / "ckpt")
    yield from serve(write_guard_config(root / "untrained.toml", ckpt, disable_input_check=True))


def test_a_guard_that_answers_anything_else_is_a_clear_error(untrained_url: str) -> None:
    # disable_input_check: a conversation whose last message is the user's is not sent to the model
    assert judge(untrained_url, user(HARMFUL)).json() == {"responses": [SAFE]}
    reply = judge(untrained_url, user(HARMFUL), {"role": "assistant", "content": "Sure.", "stop_reason": "end_of_turn"})
    assert reply.status_code == 502
    error = reply.json()["error"]
    assert error["type"] == "provider"
    assert error["message"].startswith("The llama_guard shield's model Llama-Guard-3-1B answered '")
    assert error["message"].endswith("', which is neither 'safe' nor 'unsafe' and a line of category codes: is it a Llama Guard 3 model?")
