"""Download throughput: one 1 GiB file from the loopback fake CDN, ours with 1 and 4 streams, beside curl.

The server is the tests' fake Meta CDN (tests/download/cdn.py: signed query checked, bodies sent with
os.sendfile), in a process of its own so that it never waits on the client's GIL. Parallelism is ranged parts of the one file (64 MiB each, 16 parts), pulled by
`max_parallel` streams and written at their offsets; curl fetches the same signed URL in one stream.
Everyone writes to a file in the same folder, the file is deleted between runs, and configurations
are interleaved so they see the same machine load. A line per configuration: median seconds, MiB/s.

Loopback has no per-connection limit, so a second round caps each response at `--capped-mib-s`
(as CDN edges cap a connection): there, parallel streams are what make a download fast.

    python benches/bench_download.py [--size-mib 1024] [--runs 3] [--capped-mib-s 100] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from download.cdn import FakeCDN  # noqa: E402

from llama_core.download import FetchOptions, RemoteFile, fetch_files  # noqa: E402
from llama_core.download.meta import file_url  # noqa: E402

FOLDER, NAME = "Llama-Bench", "consolidated.00.pth"


def make_file(path: Path, size: int) -> None:
    """`size` bytes: one 64 MiB random block repeated (content does not matter: no compression anywhere)."""
    block = os.urandom(min(size, 64 * 2**20))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        for start in range(0, size, len(block)):
            f.write(block[: size - start])


def ours(url: str, out: Path, streams: int) -> Callable[[], None]:
    options = FetchOptions(max_parallel=streams)

    def run() -> None:
        anyio.run(lambda: fetch_files([RemoteFile(NAME, url)], out, options=options))

    return run


def curl(url: str, out: Path) -> Callable[[], None]:
    def run() -> None:
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(["curl", "-sSf", "-o", str(out / NAME), url], check=True)

    return run


def serve(root: Path, rate_mib_s: float) -> None:
    """Child process: serve `root` and print the signed URL of the file; stop when stdin closes."""
    with FakeCDN(root) as cdn:
        cdn.rate = rate_mib_s * 2**20 if rate_mib_s else None
        print(file_url(cdn.signed_url(), FOLDER, NAME), flush=True)
        sys.stdin.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where the served and fetched files go (default: a temp dir)")
    parser.add_argument(
        "--capped-mib-s", type=float, default=100.0, help="then again with each connection capped at this rate (0: skip)"
    )
    parser.add_argument("--capped-runs", type=int, default=1)
    parser.add_argument("--serve", type=Path, default=None, help=argparse.SUPPRESS)  # the server child
    parser.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        return serve(args.serve, args.rate)
    if shutil.which("curl") is None:
        sys.exit("curl is not installed")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        make_file(Path(tmp) / "cdn" / FOLDER / NAME, args.size_mib * 2**20)
        print(f"{args.size_mib} MiB from the loopback fake CDN (server in its own process), {os.cpu_count()} CPUs")
        bench(Path(tmp), args.size_mib, args.runs, 0.0)
        if args.capped_mib_s:
            bench(Path(tmp), args.size_mib, args.capped_runs, args.capped_mib_s)
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def bench(tmp: Path, size_mib: int, runs: int, rate_mib_s: float) -> None:
    """Time each configuration `runs` times, interleaved; print a line per configuration."""
    server = [sys.executable, __file__, "--serve", str(tmp / "cdn"), "--rate", str(rate_mib_s)]
    with subprocess.Popen(server, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None and child.stdin is not None
        url = child.stdout.readline().strip()
        out = tmp / "out"
        configs = [
            ("curl, 1 stream", curl(url, out)),
            ("llama download, 1 stream", ours(url, out, 1)),
            ("llama download, 4 streams", ours(url, out, 4)),
        ]
        times: dict[str, list[float]] = {label: [] for label, _ in configs}
        for _ in range(runs):
            for label, run in configs:
                shutil.rmtree(out, ignore_errors=True)
                start = time.perf_counter()
                run()
                times[label].append(time.perf_counter() - start)
                got = (out / NAME).stat().st_size
                assert got == size_mib * 2**20, f"{label}: {got} bytes, expected {size_mib} MiB"
        child.stdin.close()
    cap = f"each connection capped at {rate_mib_s:g} MiB/s" if rate_mib_s else "no cap"
    for label, seconds in times.items():
        median = statistics.median(seconds)
        print(f"{cap:<36} {label:<26} {median:7.2f} s {size_mib / median:7.0f} MiB/s  (median of {runs})")


if __name__ == "__main__":
    main()
