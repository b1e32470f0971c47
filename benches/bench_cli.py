"""Cold-start time of `llama --help` and `llama model list`, beside llama-models' own `llama-model`.

Each command runs in a fresh process N times (after one untimed warm-up that fills the disk cache),
ours and theirs interleaved so both see the same machine load; a line per configuration prints
the medians and ours/theirs. Goal: ours <= 0.5x theirs.

llama-models gained its `llama-model` console script in 0.3.0, while the dev venv pins 0.0.63, so
this script builds (once) a separate venv with `llama-models==0.3.0` under the cache directory.
Its base dependencies do not include torch, and we install nothing unpinned beside it.

    python benches/bench_cli.py [--runs 7] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

REFERENCE = "llama-models==0.3.0"

# (label, our argv after `llama`, their argv after `llama-model`)
CONFIGS = [
    ("--help", ["--help"], ["--help"]),
    ("model list", ["model", "list"], ["list"]),
]


def default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "llama-toolchain" / "bench_cli"


def reference_cli(cache_dir: Path) -> Path:
    """`llama-model` of llama-models 0.3.0 in its own venv, built on first use."""
    env_dir = cache_dir / REFERENCE.replace("==", "-")
    exe = env_dir / "bin" / "llama-model"
    if exe.exists():
        return exe
    print(f"# building {env_dir} with {REFERENCE} (once)", file=sys.stderr)
    venv.create(env_dir, with_pip=True, clear=True)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, REFERENCE], check=True)
    probe = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import torch"], capture_output=True)
    if probe.returncode == 0:  # its base install must not need torch; if it does, say so
        print(f"# note: torch is importable in {env_dir}", file=sys.stderr)
    return exe


def wall_time(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    args = parser.parse_args()

    ours = Path(sys.executable).with_name("llama")
    theirs = reference_cli(args.cache_dir)
    # Same terminal-less conditions for both, with an empty ~/.llama. Bytecode caching is on, as
    # after any pip install (the warm-up run writes our .pyc files; theirs come from pip).
    home = tempfile.mkdtemp(prefix="bench-cli-")
    env = dict(os.environ, COLUMNS="160", LLAMA_STACK_CONFIG_DIR=home, NO_COLOR="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)

    print(f"# median of {args.runs} cold starts each; ours: {ours}; theirs: {theirs} ({REFERENCE})")
    for label, our_args, their_args in CONFIGS:
        a, b = [str(ours), *our_args], [str(theirs), *their_args]
        wall_time(a, env), wall_time(b, env)  # warm the disk cache
        times_a, times_b = [], []
        for _ in range(args.runs):
            times_a.append(wall_time(a, env))
            times_b.append(wall_time(b, env))
        med_a, med_b = statistics.median(times_a), statistics.median(times_b)
        print(
            f"llama {label:<12} {med_a * 1000:6.1f} ms (min {min(times_a) * 1000:5.1f})   "
            f"llama-model {' '.join(their_args):<6} {med_b * 1000:6.1f} ms (min {min(times_b) * 1000:5.1f})   "
            f"ratio {med_a / med_b:.2f} ({'ok' if med_a <= 0.5 * med_b else 'over'} goal 0.50)"
        )


if __name__ == "__main__":
    main()
