"""`llama stack run ...` as a real subprocess for tests: started, waited for, stopped with Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx


@contextlib.contextmanager
def llama_stack_run(
    args: Sequence[str],
    port: int,
    log: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    stdin: str | None = None,
) -> Iterator[str]:
    """Run `llama stack run ARGS --port PORT` (output in `log`); yield its URL once /health answers.

    `stdin`: what the server reads on its stdin (then end of input). On exit it sends Ctrl-C and
    checks the server stopped cleanly (exit 0); the log explains any failure.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cli", "stack", "run", *args, "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
        )  # fmt: skip
    if stdin is not None:
        assert proc.stdin is not None
        proc.stdin.write(stdin.encode())
        proc.stdin.close()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(2)  # Ctrl-C: a graceful stop
        try:
            assert proc.wait(20) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
