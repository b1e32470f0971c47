"""`llama stack run` as a user runs it (a real server process, a Fireworks config: no model needed):
the API key from LLAMA_STACK_API_KEY, from stdin (`--api-key -`) or, with a warning, the command
line; --allowed-host and the run config's allowed_hosts (issue 11, items 12 and 13)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rpc.server import free_port

from .process import llama_stack_run

from llama_core.config import RunConfig, save_run_config

KEY = "stack-key-123456"
WARNING = "warning: --api-key on the command line is visible to other users in `ps`; use LLAMA_STACK_API_KEY instead"


def write_config(root: Path, allowed_hosts: list[str] | None = None) -> Path:
    config = RunConfig(name="fw", distribution_id="local-plus-fireworks-inference", allowed_hosts=allowed_hosts, providers={
        "inference": {"provider_id": "remote::fireworks", "url": "http://127.0.0.1:9", "api_key": "fw-unused-1"}})  # fmt: skip
    return save_run_config(config, root / "fw.toml")


def statuses(url: str, host: str | None = None) -> tuple[int, int, int]:
    """/models/list without a key, with a wrong one, with KEY (and `host` as the Host header)."""
    headers = {"Host": host} if host else {}
    return tuple(  # type: ignore[return-value]
        httpx.get(url + "/models/list", headers={**headers, **auth}, timeout=10).status_code
        for auth in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {KEY}"})
    )


@pytest.mark.parametrize(
    ("how", "warned"),
    [("argument", True), ("env", False), ("stdin", False)],
)
def test_the_api_key_three_ways(tmp_path: Path, how: str, warned: bool) -> None:
    args, env, stdin = [str(write_config(tmp_path))], {"LLAMA_STACK_CONFIG_DIR": str(tmp_path / "home")}, None
    if how == "argument":
        args += ["--api-key", KEY]
    elif how == "env":
        env["LLAMA_STACK_API_KEY"] = KEY
    else:
        args += ["--api-key", "-"]
        stdin = KEY + "\n"
    log = tmp_path / "server.log"
    with llama_stack_run(args, free_port(), log, env=env, stdin=stdin) as url:
        assert statuses(url) == (401, 401, 200)
    lines = log.read_text().splitlines()
    assert (WARNING in lines) is warned and sum("warning" in line for line in lines) == int(warned)
    assert KEY not in log.read_text()


def test_api_key_dash_without_stdin_is_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "llama_cli", "stack", "run", str(write_config(tmp_path)), "--api-key", "-", "--port", str(free_port())],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (2, "", "Error: --api-key - reads the value from stdin, but stdin gave none.\n")


@pytest.fixture(scope="module")
def allowing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("allowed")
    args = [str(write_config(root, ["box.lan"])), "--allowed-host", "gpu-box.lan", "--allowed-host", "10.0.0.7"]
    with llama_stack_run(args, free_port(), root / "server.log", env={"LLAMA_STACK_API_KEY": KEY}) as url:
        yield url


@pytest.mark.parametrize(
    ("host", "allowed"),
    [("localhost:5000", True), ("gpu-box.lan:5000", True), ("10.0.0.7", True), ("box.lan", True), ("evil.example", False)],
)
def test_allowed_hosts_from_the_flag_and_the_config(allowing: str, host: str, allowed: bool) -> None:
    assert statuses(allowing, host) == ((401, 401, 200) if allowed else (403, 403, 403))
    answer = httpx.get(allowing + "/models/list", headers={"Host": host}, timeout=10)
    if not allowed:  # refused before the key is looked at: a page elsewhere learns nothing
        name = host.partition(":")[0]
        assert answer.json()["error"]["message"] == (
            f"Host '{name}' is not allowed: this server answers to localhost; start it with --allowed-host {name} to allow it."
        )


@pytest.mark.parametrize(("how", "warned"), [("argument", True), ("env", False), ("stdin", False)])
def test_the_inference_client_takes_the_key_the_same_three_ways(how: str, warned: bool) -> None:
    import os
    import subprocess
    import sys

    from rpc.fakes import FakeStack
    from rpc.server import running_server

    from llama_rpc.http import create_app

    argv, env, stdin = ["--message", "hi"], {k: v for k, v in os.environ.items() if k != "LLAMA_STACK_API_KEY"}, ""
    if how == "argument":
        argv += ["--api-key", KEY]
    elif how == "env":
        env["LLAMA_STACK_API_KEY"] = KEY
    else:
        argv, stdin = ["--api-key", "-"], KEY + "\nhi\n"  # the key's line, then the message
    with running_server(lambda: create_app(FakeStack(), api_key=KEY)) as url:
        done = subprocess.run([sys.executable, "-m", "llama_cli.client.inference", "127.0.0.1", url.rsplit(":", 1)[1], *argv],
                              input=stdin, capture_output=True, text=True, env={**env, "NO_COLOR": "1"}, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Assistant> You said: hi" in done.stdout
    assert done.stderr == (WARNING + "\n" if warned else "")
    assert KEY not in done.stdout + done.stderr
