"""Model parallel across hosts: `llama stack run` holds rank 0, `llama stack worker` runs rank 1.

Two process trees on loopback stand for two hosts: each its own session, so killing the second
"host" (its whole process group) leaves the first alone, as a machine going down would.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import tomli_w
import torch

from engine.tiny_checkpoint import write_tiny_checkpoint
from llama_core.engine.checkpoint import load_model
from llama_core.tokenizer import Tokenizer
from stack.process import llama_stack_run

MODEL = "Llama3.2-1B-Instruct"
PROMPT = "The capital of France is"
N_NEW = 6
TOP_K = 3
# What a request meets once the second host is gone: in flight when rank 0 noticed, or after.
LOST = "The inference engine lost one of its model-parallel ranks (on this host or another)"
RESTARTING = re.compile(
    r"The inference engine is restarting after a worker crash \(it waits for the ranks on the other 1 host\(s\) "
    r"to rejoin\); retry in \d+ s\.$"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reference(ckpt: Path) -> list[dict[str, float]]:
    """The top-k log-probabilities of each greedy step, from full forward passes of the unsplit
    checkpoint in this process (no KV cache, no second rank)."""
    tok = Tokenizer.from_file(ckpt)
    model = load_model(str(ckpt), max_seq_len=64, max_batch_size=1, dtype="fp32", device="cpu")[0]
    tokens = tok.encode(PROMPT, bos=True, eos=False)
    steps = []
    with torch.inference_mode():
        for _ in range(N_NEW):
            logprobs = torch.log_softmax(model(torch.tensor([tokens]), torch.tensor([0]))[0, -1].float(), -1)
            top = torch.topk(logprobs, TOP_K)
            steps.append({tok.decode([int(i)]): float(v) for v, i in zip(top.values, top.indices)})
            tokens.append(int(top.indices[0]))
    return steps


def complete(url: str) -> httpx.Response:
    body = {"model": MODEL, "content": PROMPT, "logprobs": {"top_k": TOP_K},
            "sampling_params": {"strategy": "greedy", "max_tokens": N_NEW}}  # fmt: skip
    return httpx.post(url + "/inference/completion", json=body, timeout=60)


def start_worker(config: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with log.open("a") as out:
        return subprocess.Popen([sys.executable, "-m", "llama_cli", "stack", "worker", str(config), "--node-rank", "1"],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)  # fmt: skip


def stop_host(proc: subprocess.Popen) -> None:
    """SIGKILL to the host's whole process tree: the machine went away."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def wait_served(url: str, timeout: float) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        answer = complete(url)
        if answer.status_code == 200 or time.monotonic() > deadline:
            return answer
        assert answer.status_code == 503, answer.text
        time.sleep(0.5)


def test_two_hosts_serve_a_split_model_as_one_and_recover_from_losing_one(tmp_path: Path, tiny_ckpt: Path) -> None:
    mp2 = write_tiny_checkpoint(tmp_path / "tiny-mp2", model_parallel=2)
    config = tmp_path / "two-hosts.toml"
    inference = {"provider_id": "meta-reference", "model": MODEL, "checkpoint_dir": str(mp2), "max_seq_len": 64,
                 "max_batch_size": 2, "dtype": "fp32", "nnodes": 2, "master_addr": "127.0.0.1", "master_port": free_port()}  # fmt: skip
    config.write_text(tomli_w.dumps({"name": "two", "distribution_id": "local", "providers": {"inference": inference}}))
    expected = reference(tiny_ckpt)
    worker_log = tmp_path / "worker.log"
    worker = start_worker(config, worker_log)
    try:
        with llama_stack_run([str(config)], free_port(), tmp_path / "server.log", timeout=180) as url:
            answer = complete(url)
            assert answer.status_code == 200, answer.text
            steps = [lp["logprobs_by_token"] for lp in answer.json()["logprobs"]]
            assert [list(s) for s in steps] == [list(s) for s in expected]  # the same tokens, ranked alike
            for got, want in zip(steps, expected):
                assert got == pytest.approx(want, abs=1e-4)
            assert "Rank 1 of 2: joined" in worker_log.read_text()

            ranks = children(worker.pid)
            assert len(ranks) == 1
            worker.kill()  # the second host's command is killed: its rank goes with it, requests fail clearly
            worker.wait(10)
            wait_gone(ranks)
            lost = wait_lost(url)
            assert lost.status_code == 503
            message = lost.json()["error"]["message"]
            assert message.startswith(LOST) or RESTARTING.match(message), message

            worker = start_worker(config, worker_log)  # it comes back: the group forms again
            again = wait_served(url, timeout=120)
            assert again.status_code == 200, again.text
            assert again.json() == answer.json()
        # The server stopped: the worker waits for it to start again, and Ctrl-C stops the worker.
        wait_for_line(worker_log, "The group ended")
        worker.send_signal(signal.SIGINT)
        assert worker.wait(20) == 0
        assert "Traceback" not in worker_log.read_text()
    finally:
        if worker.poll() is None:
            stop_host(worker)


def children(pid: int) -> list[int]:
    """The pids of `pid`'s child processes (multiprocessing's resource tracker aside)."""
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return [k for k in kids if "resource_tracker" not in Path(f"/proc/{k}/cmdline").read_bytes().decode(errors="replace")]


def wait_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{p}").exists() and "Z" not in Path(f"/proc/{p}/stat").read_text().split()[2] for p in pids):
        assert time.monotonic() < deadline, f"ranks {pids} outlived their `llama stack worker`"
        time.sleep(0.1)


def wait_for_line(log: Path, text: str) -> None:
    deadline = time.monotonic() + 30
    while text not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def wait_lost(url: str) -> httpx.Response:
    """The first answer that is not a success once the host is gone (the heartbeat notices it idle)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = complete(url)
        if answer.status_code != 200:
            return answer
        time.sleep(0.2)
    raise AssertionError("requests still succeed a minute after rank 1's host went away")


def test_a_checkpoint_in_too_few_shards_is_refused_before_waiting_for_other_hosts(tmp_path: Path, tiny_ckpt: Path) -> None:
    config = tmp_path / "unsplit.toml"
    inference = {"provider_id": "meta-reference", "model": MODEL, "checkpoint_dir": str(tiny_ckpt), "max_seq_len": 64,
                 "nnodes": 2, "master_addr": "127.0.0.1", "master_port": free_port()}  # fmt: skip
    config.write_text(tomli_w.dumps({"name": "one", "distribution_id": "local", "providers": {"inference": inference}}))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "llama_cli", "stack", "run", str(config), "--port", str(free_port())],
                         capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        "Error: A model split over 2 hosts needs a checkpoint in as many shards (consolidated.NN.pth) as model-parallel "
        f"ranks, a multiple of 2; {tiny_ckpt} has 1 shard(s). Meta's Llama 3.1 70B and 405B checkpoints come in 8 shards."
    )


def test_the_worker_refuses_a_config_that_does_not_span_hosts(tmp_path: Path, tiny_ckpt: Path) -> None:
    config = tmp_path / "one.toml"
    inference = {"provider_id": "meta-reference", "model": MODEL, "checkpoint_dir": str(tiny_ckpt)}
    config.write_text(tomli_w.dumps({"name": "one", "distribution_id": "local", "providers": {"inference": inference}}))
    run = subprocess.run([sys.executable, "-m", "llama_cli", "stack", "worker", str(config)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"Error: {config} does not split its model over several hosts: set the meta-reference inference "
        "provider's nnodes (and master_addr) there, e.g. `nnodes = 2`."
    )
    assert "Traceback" not in run.stderr + run.stdout


@pytest.mark.parametrize(
    ("rank", "message"),
    [
        ("2", "Node rank must be from 1 to 1 with nnodes 2 (0 is the server's host), not 2."),
        ("-1", "Node rank must be from 1 to 1 with nnodes 2 (0 is the server's host), not -1."),
        ("0", "Node rank 0 is the server's host: run `llama stack run` there."),
    ],
)
def test_the_worker_says_which_node_ranks_it_takes(tmp_path: Path, tiny_ckpt: Path, rank: str, message: str) -> None:
    config = tmp_path / "two.toml"
    inference = {"provider_id": "meta-reference", "model": MODEL, "checkpoint_dir": str(tiny_ckpt), "model_parallel_size": 2,
                 "nnodes": 2, "master_addr": "127.0.0.1"}  # fmt: skip
    config.write_text(tomli_w.dumps({"name": "two", "distribution_id": "local", "providers": {"inference": inference}}))
    argv = [sys.executable, "-m", "llama_cli", "stack", "worker", str(config), f"--node-rank={rank}"]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    # the worker's ranges start at 1: the engine's "from 0 to 1" would offer the server's host
    assert (run.returncode, run.stdout, run.stderr) == (2, "", f"Error: {message}\n")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"world_size": 3, "nnodes": 2, "rendezvous": "tcp://h:1"}, "3 model-parallel ranks cannot be spread evenly over 2 hosts."),
        ({"world_size": 2, "nnodes": 2}, "2 hosts need the address rank 0 listens on (master_addr, or MASTER_ADDR)."),
        ({"world_size": 2, "nnodes": 2, "node_rank": 2, "rendezvous": "tcp://h:1"}, "node_rank must be from 0 to 1 with 2 hosts, got 2."),
        ({"world_size": 2, "nnodes": 0}, "nnodes must be at least 1, got 0."),
    ],
)
def test_a_split_over_hosts_the_engine_cannot_run_is_refused_before_anything_starts(fields: dict, message: str) -> None:
    from llama_core.engine.messages import WorkerSpec
    from llama_core.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError) as refused:
        WorkerSpec(ckpt_dir="/nowhere", **fields)
    assert refused.value.message == message


def test_the_ranks_are_shared_out_host_by_host() -> None:
    from llama_core.engine.messages import WorkerSpec

    spec = WorkerSpec(ckpt_dir="/x", world_size=8, nnodes=4, node_rank=2, rendezvous="tcp://h:1")
    assert spec.local_ranks == range(4, 6)
    assert WorkerSpec(ckpt_dir="/x", world_size=2).local_ranks == range(0, 2)
