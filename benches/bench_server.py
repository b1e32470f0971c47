"""The HTTP server under load: requests/s and latency by concurrency, and the HTTP overhead per request.

One process, one asyncio loop: a Stack (meta-reference on the demo model, or --config), its Quart
app on Hypercorn on a free loopback port, and httpx clients. Measured in the same run:

    overhead     the same chat request sent alternately as a direct library call and over HTTP;
                 the median of (HTTP - direct) per pair is the overhead (client + server cost, both
                 on this loop, so an upper bound of what the server alone adds); once with
                 --max-tokens, once with max_tokens 1, and on GET /models/list (no generation:
                 the HTTP path alone, free of the model's jitter)
    concurrency  C clients each sending chat requests back to back; requests/s, p50 and p99

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
import socket
import statistics
import sys
import time

import httpx
import msgspec

from llama_core.stack import Stack
from llama_core.types import SamplingParams, UserMessage
from llama_core.types.inference import ChatCompletionRequest
from llama_rpc.http import create_app
from llama_rpc.serve import serve_app

PROMPT = "What is the capital of France?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def http_call(client: httpx.AsyncClient, body: bytes, stream: bool) -> None:
    if not stream:
        response = await client.post("/inference/chat_completion", content=body)
        response.raise_for_status()
        return
    async with client.stream("POST", "/inference/chat_completion", content=body) as response:
        response.raise_for_status()
        async for _ in response.aiter_bytes():
            pass


async def direct_call(stack: Stack, request: ChatCompletionRequest) -> None:
    result = await stack.api("inference").chat_completion(request)
    if request.stream:
        async for _ in result:
            pass


async def overhead(stack: Stack, client: httpx.AsyncClient, request: ChatCompletionRequest, pairs: int) -> list[float]:
    """Per pair: HTTP time minus direct time (ms), alternating which goes first."""
    body = msgspec.json.encode(request)
    diffs = []
    for i in range(pairs):
        times = {}
        for how in ("direct", "http") if i % 2 == 0 else ("http", "direct"):
            start = time.perf_counter()
            if how == "direct":
                await direct_call(stack, request)
            else:
                await http_call(client, body, request.stream)
            times[how] = time.perf_counter() - start
        diffs.append((times["http"] - times["direct"]) * 1e3)
    return diffs


async def models_overhead(stack: Stack, client: httpx.AsyncClient, pairs: int) -> list[float]:
    """The same pairing on GET /models/list: the whole HTTP path with no generation jitter."""
    from llama_core.types.models import ModelsListRequest

    diffs = []
    for _ in range(pairs):
        start = time.perf_counter()
        await stack.api("models").list_models(ModelsListRequest())
        direct = time.perf_counter() - start
        start = time.perf_counter()
        (await client.get("/models/list")).raise_for_status()
        diffs.append((time.perf_counter() - start - direct) * 1e3)
    return diffs


async def load(client: httpx.AsyncClient, request: ChatCompletionRequest, concurrency: int, total: int) -> tuple[float, list[float]]:
    """`concurrency` clients share `total` requests; (requests/s, latencies in ms)."""
    body = msgspec.json.encode(request)
    latencies: list[float] = []
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            await http_call(client, body, request.stream)
            latencies.append((time.perf_counter() - start) * 1e3)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - start), latencies


async def main(args: argparse.Namespace) -> None:
    stack = Stack.from_config(args.config) if args.config else Stack.default()
    async with stack:
        from llama_core.types.models import ModelsListRequest

        model = (await stack.api("models").list_models(ModelsListRequest()))[0].descriptor
        request = ChatCompletionRequest(
            model=model, messages=[UserMessage(content=PROMPT)],
            sampling_params=SamplingParams(max_tokens=args.max_tokens), stream=args.stream,
        )  # fmt: skip
        port, stop = free_port(), asyncio.Event()
        server = asyncio.create_task(serve_app(create_app(stack), f"127.0.0.1:{port}", shutdown_trigger=stop.wait, quiet=True))
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=600) as client:
            while True:  # until the server answers
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            await overhead(stack, client, request, 3)  # warm up both paths
            kind = "stream" if args.stream else "json"
            print(f"# {model}, max_tokens {args.max_tokens}, {kind}, python {sys.version.split()[0]}", flush=True)
            diffs = await models_overhead(stack, client, args.pairs * 10)
            print(f"overhead  models/list    pairs {len(diffs):3d}  p50 {statistics.median(diffs):6.2f} ms  "
                  f"p99 {pct(diffs, 0.99):7.2f} ms", flush=True)  # fmt: skip
            one_token = msgspec.structs.replace(request, sampling_params=SamplingParams(max_tokens=1))
            for label, req in ((f"max_tokens {args.max_tokens:2d}", request), ("max_tokens  1", one_token)):
                diffs = await overhead(stack, client, req, args.pairs)
                print(f"overhead  {label}  pairs {len(diffs):3d}  p50 {statistics.median(diffs):6.2f} ms  "
                      f"p99 {pct(diffs, 0.99):7.2f} ms", flush=True)  # fmt: skip
            for c in args.concurrency:
                rps, lat = await load(client, request, c, max(args.requests, c))
                print(f"concurrency {c:3d}  requests {len(lat):3d}  {rps:7.2f} req/s  p50 {statistics.median(lat):8.1f} ms  "
                      f"p99 {pct(lat, 0.99):8.1f} ms", flush=True)  # fmt: skip
        stop.set()
        await server


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="a run config TOML (default: `local` on the demo model)")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=64, help="requests per concurrency level (at least C)")
    parser.add_argument("--pairs", type=int, default=30, help="direct/HTTP pairs for the overhead")
    parser.add_argument("--stream", action="store_true", help="SSE instead of JSON answers")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
