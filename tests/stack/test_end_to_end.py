"""The whole path a user takes: build in the current env, configure on a terminal, run, ask.

The reference transcript's prompts are answered on a pty, with the inference answers pointing at a
tiny random checkpoint; then `llama stack run local --name ...` serves it and answers a chat.
"""

from __future__ import annotations

import sys

import httpx
import pytest

from llama_core import paths
from llama_core.config import load_run_config, run_config_path

from .process import llama_stack_run
from .transcript import PROMPTS, drive

pytest.importorskip("torch")


def test_build_configure_run_request(tmp_path, tiny_ckpt):
    from rpc.server import free_port

    ckpt = tiny_ckpt
    inference = {"model": "Llama3.2-1B-Instruct", "max_seq_len": "128", "max_batch_size": "2", "device": "cpu",
                 "dtype": "fp32", "checkpoint_dir": str(ckpt)}  # fmt: skip
    prompts, in_inference = [], True
    for prompt, answer in PROMPTS:  # the same questions; our own answers for inference
        field = prompt.removeprefix("Enter value for ").partition(" (")[0]
        in_inference = in_inference and not prompt.startswith("Do you want")
        prompts.append((prompt, inference.get(field, answer) if in_inference else answer))
    argv = [sys.executable, "-m", "llama_cli", "stack", "build", "local", "--name", "e2e", "--use-current-env"]
    rc, shown = drive(argv, prompts)
    assert rc == 0, shown
    inference = load_run_config(run_config_path("local", "e2e")).providers["inference"]
    assert inference["checkpoint_dir"] == str(ckpt)
    # llama_guard_shield's model is served too, as downloaded (here: the tiny checkpoint in its place).
    assert inference["extra_models"] == [{"model": "Llama-Guard-3-8B"}]
    paths.checkpoints_dir().mkdir(parents=True)
    paths.model_checkpoint_dir("Llama-Guard-3-8B").symlink_to(ckpt, target_is_directory=True)

    port, log = free_port(), tmp_path / "server.log"
    with llama_stack_run(["local", "--name", "e2e"], port, log) as url:
        body = {"model": "Llama3.2-1B-Instruct", "messages": [{"role": "user", "content": "hello"}],
                "sampling_params": {"max_tokens": 4}}  # fmt: skip
        reply = httpx.post(url + "/inference/chat_completion", json=body, timeout=60)
        assert reply.status_code == 200, reply.text
        assert reply.json()["completion_message"]["stop_reason"] == "out_of_tokens"
        models = httpx.get(url + "/models/list", timeout=10).json()
        assert [(m["descriptor"], m["provider"]) for m in models] == [("Llama3.2-1B-Instruct", "meta-reference"),
                                                                      ("Llama-Guard-3-8B", "meta-reference")]  # fmt: skip
        # Safety serves the transcript's llama_guard shield through inference on the guard model, which
        # inherits this build's max_seq_len of 128: too short for the guard prompt, and said so.
        body = {"messages": [{"role": "user", "content": "hello"}], "shields": [{"shield_type": "llama_guard"}]}
        shields = httpx.post(url + "/safety/run_shields", json=body, timeout=60)
        assert shields.status_code == 400, shields.text
        assert "this model's context (max_seq_len) is 128" in shields.json()["error"]["message"]
