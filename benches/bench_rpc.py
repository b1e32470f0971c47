"""Round trips per second of `models/list` over stdio (JSON-RPC) and over HTTP, in the same run.

Both servers serve the same stack, one with no model (models/list answers `[]` from the stack
itself, so this measures the transports): `python -m llama_rpc CONFIG` on pipes, and `llama stack
run CONFIG --port P` (Hypercorn) on loopback. The HTTP client is as lean as the stdio one: raw
keep-alive HTTP/1.1 on asyncio streams (bench_server.Connection). Each configuration runs for
--seconds, the transports alternating --rounds times so all see the same machine load; a line per
configuration prints the median rate and the best.

    sequential   one request at a time: send, wait for the answer, repeat (latency-bound)
    window 32    32 requests in flight at all times (stdio: pipelined lines; HTTP: 32 connections)

    python benches/bench_rpc.py [--seconds 2] [--rounds 3] [--httpx]

--httpx adds the same two HTTP configurations through httpx (sync Client, AsyncClient pool of 32)
to show the client's own cost: httpx's AsyncClient scans its whole pool on every request
(httpcore's `_assign_requests_to_connections`, encode/httpx#3215), so its CPU per request grows
with the connections in flight, and with 32 it is the bottleneck, not the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from bench_server import Connection  # benches/ is on sys.path when this script runs

WINDOW = 32


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stdio:
    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_rpc", str(config)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0
        )
        self.next_id = 0
        assert self.sequential(0.2) > 0  # started and answering

    def _line(self) -> bytes:
        self.next_id += 1
        return b'{"jsonrpc":"2.0","id":%d,"method":"models/list"}\n' % self.next_id

    def sequential(self, seconds: float) -> float:
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            stdin.write(self._line())
            answer = stdout.readline()
            assert b'"result":[]' in answer, answer
            n += 1
        return n / elapsed

    def window(self, seconds: float) -> float:
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None
        stdin.write(b"".join(self._line() for _ in range(WINDOW)))
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            assert b'"result":[]' in stdout.readline()
            n += 1
            stdin.write(self._line())  # one out, one in: WINDOW stay in flight
        for _ in range(WINDOW):
            stdout.readline()
        return n / elapsed

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


class Http:
    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/models/list"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cli", "stack", "run", str(config), "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        self.client = httpx.Client(timeout=10)
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.client.get(self.url).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the HTTP server did not start") from None
                time.sleep(0.1)

    def _run(self, seconds: float, connections: int) -> float:
        """`connections` raw keep-alive connections, each sending its next request on each answer."""

        async def run() -> float:
            count, start = 0, time.perf_counter()

            async def worker() -> None:
                nonlocal count
                conn = Connection(self.port)
                while time.perf_counter() - start < seconds:
                    assert await conn.checked("GET", "/models/list") == b"[]"
                    count += 1
                conn.close()

            await asyncio.gather(*(worker() for _ in range(connections)))
            return count / (time.perf_counter() - start)

        return asyncio.run(run())

    def sequential(self, seconds: float) -> float:
        return self._run(seconds, 1)

    def window(self, seconds: float) -> float:
        return self._run(seconds, WINDOW)

    def httpx_sequential(self, seconds: float) -> float:
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            response = self.client.get(self.url)
            assert response.json() == []
            n += 1
        return n / elapsed

    def httpx_window(self, seconds: float) -> float:
        async def run() -> float:
            limits = httpx.Limits(max_connections=WINDOW, max_keepalive_connections=WINDOW)
            async with httpx.AsyncClient(timeout=10, limits=limits) as client:
                count, start = 0, time.perf_counter()

                async def worker() -> None:
                    nonlocal count
                    while time.perf_counter() - start < seconds:
                        assert (await client.get(self.url)).json() == []
                        count += 1

                await asyncio.gather(*(worker() for _ in range(WINDOW)))
                return count / (time.perf_counter() - start)

        return asyncio.run(run())

    def close(self) -> None:
        self.client.close()
        self.proc.send_signal(2)
        self.proc.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--httpx", action="store_true", help="also time HTTP through httpx (the client's own cost)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "empty.toml"
        config.write_text('name = "empty"\ndistribution_id = "local"\n')
        env = {**os.environ, "LLAMA_STACK_CONFIG_DIR": str(Path(tmp) / "home")}
        stdio, http = Stdio(config, env), Http(config, env)
        try:
            rates: dict[str, list[float]] = {}
            configs: list[tuple[str, Callable[[float], float]]] = [
                ("stdio sequential", stdio.sequential),
                ("http  sequential", http.sequential),
                (f"stdio window {WINDOW}", stdio.window),
                (f"http  window {WINDOW}", http.window),
            ]
            if args.httpx:
                configs += [("httpx sequential", http.httpx_sequential), (f"httpx window {WINDOW}", http.httpx_window)]
            for _ in range(args.rounds):
                for label, run in configs:
                    rates.setdefault(label, []).append(run(args.seconds))
        finally:
            stdio.close()
            http.close()
    cpus = os.cpu_count()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# models/list round trips/s, {args.rounds} x {args.seconds:g} s each, {cpus} CPUs (load {load}), Python {sys.version.split()[0]}")
    for label, values in rates.items():
        print(json.dumps({"config": label, "median_rt_per_s": round(statistics.median(values)), "best_rt_per_s": round(max(values))}))


if __name__ == "__main__":
    main()
