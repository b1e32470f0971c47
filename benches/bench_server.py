"""The HTTP server under load: requests/s and latency by concurrency, and the HTTP overhead per request.

Two processes, as `llama stack run` and a client are. The server process holds the Stack
(meta-reference on the demo model, or --config) and serves its Quart app through Hypercorn on a
free loopback port, on its own asyncio loop. This process is the client: lean keep-alive HTTP/1.1
connections on raw asyncio streams (tens of microseconds a request; httpx costs milliseconds of
CPU per request on a slow machine, which would be counted as overhead). Measured in the same run:

    overhead     the same request made alternately as a direct library call and over HTTP; the
                 direct call runs in the server process, on the server's loop and Stack, timed
                 there (asked for on a pipe, outside the timing); the median of (HTTP round trip -
                 direct) per pair is the overhead: what a client pays for HTTP over a library call
                 (its own few tens of microseconds of parsing included). Once on GET /models/list
                 (no generation: the HTTP path alone, free of the model's jitter; the line to read
                 against the goal), once with --max-tokens, once with max_tokens 1 (these two
                 carry the engine's run-to-run jitter, tens of ms on a busy two-core machine, so
                 their p50 moves by more than the overhead itself unless --pairs is large)
    concurrency  C connections each sending chat requests back to back; requests/s, p50 and p99

    python benches/bench_server.py [--config RUN.toml] [--max-tokens 16] [--concurrency 1,8,32]
                                   [--requests 64] [--pairs 30] [--stream]

The demo model must be downloaded (`llama download --model-id SmolLM2-135M-Instruct`). On a
two-core machine run it with OMP_NUM_THREADS=1: torch's two intra-op threads in the worker and the
server's own work on the same cores slow every step (tens of ms per request).
Goal (issue 5): overhead under 2 ms p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

PROMPT = "What is the capital of France?"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- the client: one keep-alive HTTP/1.1 connection on raw asyncio streams ----------------------


class Connection:
    """Sends a request, reads the whole answer (Content-Length or chunked); reconnects when the server closes."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """(status, body) of one request; the body of a chunked answer (SSE) is its chunks joined."""
        if self.streams is None:
            self.streams = await asyncio.open_connection(HOST, self.port)
        reader, writer = self.streams
        length = f"Content-Length: {len(body)}\r\n" if body or method == "POST" else ""
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n{length}\r\n".encode() + body)
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower().split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        headers = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
        if "content-length" in headers:
            data = await reader.readexactly(int(headers["content-length"]))
        else:  # chunked: `<hex size>\r\n<bytes>\r\n` ... `0\r\n\r\n`
            parts = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append((await reader.readexactly(size + 2))[:-2])
            await reader.readuntil(b"\r\n")
            data = b"".join(parts)
        if headers.get("connection") == "close":  # e.g. Hypercorn's keep_alive_max_requests
            writer.close()
            self.streams = None
        return status, data

    async def checked(self, method: str, path: str, body: bytes = b"") -> bytes:
        status, data = await self.request(method, path, body)
        if status != 200:
            raise RuntimeError(f"{method} {path}: {status} {data[:200]!r}")
        return data

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


# --- the server process: the Stack, its app on Hypercorn, and direct calls on request ----------


async def serve(port: int, config: str | None) -> None:
    """Serve the stack on `port`; each stdin line (a JSON call) is run directly and answered with its time."""
    import msgspec

    from llama_core.stack import Stack
    from llama_core.types.inference import ChatCompletionRequest
    from llama_core.types.models import ModelsListRequest
    from llama_rpc.http import create_app
    from llama_rpc.serve import serve_app

    answers, sys.stdout = sys.stdout, sys.stderr  # anything else printed must not reach the pipe
    stack = Stack.from_config(config) if config else Stack.default()
    async with stack:
        stop = asyncio.Event()
        server = asyncio.create_task(serve_app(create_app(stack), f"{HOST}:{port}", shutdown_trigger=stop.wait, quiet=True))
        lines = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(lines), sys.stdin)
        while line := await lines.readline():
            call = json.loads(line)
            if call["call"] == "models":
                start = time.perf_counter()
                models = await stack.api("models").list_models(ModelsListRequest())
                elapsed = time.perf_counter() - start
                answer = {"ms": elapsed * 1e3, "model": models[0].descriptor if models else None}
            else:
                request = msgspec.json.decode(call["request"], type=ChatCompletionRequest)
                start = time.perf_counter()
                result = await stack.api("inference").chat_completion(request)
                if request.stream:
                    async for _ in result:
                        pass
                answer = {"ms": (time.perf_counter() - start) * 1e3}
            answers.write(json.dumps(answer) + "\n")
            answers.flush()
        stop.set()
        await server


class Server:
    """The server process, started on a free port; `direct(call)` times a library call inside it."""

    def __init__(self, config: str | None) -> None:
        self.port = free_port()
        command = [sys.executable, __file__, "--serve", str(self.port)] + (["--config", config] if config else [])
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def direct(self, call: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(call) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError("the server process exited")
        return json.loads(answer)

    async def wait_ready(self, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                await Connection(self.port).checked("GET", "/health")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start") from None
                await asyncio.sleep(0.1)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # the server process stops Hypercorn and leaves its Stack
        self.proc.wait(60)


# --- the measurements ------------------------------------------------------------------------


def chat_body(model: str, max_tokens: int, stream: bool) -> bytes:
    messages = [{"role": "user", "content": PROMPT}]
    return json.dumps({"model": model, "messages": messages, "sampling_params": {"max_tokens": max_tokens}, "stream": stream}).encode()


async def overhead(server: Server, conn: Connection, call: dict[str, Any], http: tuple[str, str, bytes], pairs: int) -> list[float]:
    """Per pair: HTTP round trip minus the direct call (ms), alternating which goes first."""
    diffs = []
    for i in range(pairs):
        times = {}
        for how in ("direct", "http") if i % 2 == 0 else ("http", "direct"):
            if how == "direct":
                times[how] = server.direct(call)["ms"]
            else:
                start = time.perf_counter()
                await conn.checked(*http)
                times[how] = (time.perf_counter() - start) * 1e3
        diffs.append(times["http"] - times["direct"])
    return diffs


async def load(port: int, body: bytes, concurrency: int, total: int) -> tuple[float, list[float]]:
    """`concurrency` connections share `total` chat requests; (requests/s, latencies in ms)."""
    latencies: list[float] = []
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        conn = Connection(port)
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            await conn.checked("POST", "/inference/chat_completion", body)
            latencies.append((time.perf_counter() - start) * 1e3)
        conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - start), latencies


def report(label: str, diffs: list[float]) -> None:
    print(f"overhead  {label}  pairs {len(diffs):3d}  p50 {statistics.median(diffs):6.2f} ms  p99 {pct(diffs, 0.99):7.2f} ms", flush=True)


async def main(args: argparse.Namespace) -> None:
    server = Server(args.config)
    try:
        await server.wait_ready()
        model = server.direct({"call": "models"})["model"]
        conn = Connection(server.port)
        body = chat_body(model, args.max_tokens, args.stream)
        chat = ("POST", "/inference/chat_completion", body)
        await overhead(server, conn, {"call": "chat", "request": body.decode()}, chat, 3)  # warm up both paths
        kind = "stream" if args.stream else "json"
        print(f"# {model}, max_tokens {args.max_tokens}, {kind}, python {sys.version.split()[0]}, server in its own process", flush=True)
        report("models/list  ", await overhead(server, conn, {"call": "models"}, ("GET", "/models/list", b""), args.pairs * 10))
        one_token = chat_body(model, 1, args.stream)
        for label, b in ((f"max_tokens {args.max_tokens:2d}", body), ("max_tokens  1", one_token)):
            diffs = await overhead(server, conn, {"call": "chat", "request": b.decode()}, ("POST", "/inference/chat_completion", b), args.pairs)
            report(label, diffs)
        conn.close()
        for c in args.concurrency:
            rps, lat = await load(server.port, body, c, max(args.requests, c))
            print(f"concurrency {c:3d}  requests {len(lat):3d}  {rps:7.2f} req/s  p50 {statistics.median(lat):8.1f} ms  "
                  f"p99 {pct(lat, 0.99):8.1f} ms", flush=True)  # fmt: skip
    finally:
        server.close()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="a run config TOML (default: `local` on the demo model)")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=64, help="requests per concurrency level (at least C)")
    parser.add_argument("--pairs", type=int, default=30, help="direct/HTTP pairs for the overhead")
    parser.add_argument("--stream", action="store_true", help="SSE instead of JSON answers")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)  # the server process
    return parser.parse_args()


if __name__ == "__main__":
    options = parse()
    asyncio.run(serve(options.serve, options.config) if options.serve else main(options))
