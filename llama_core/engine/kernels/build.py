"""Build a C++ torch extension once per machine, whatever the checkout or venv, and load it.

torch.utils.cpp_extension.load keys its cache by name only and writes the checkout's absolute paths
into its build file, so two checkouts of the same sources rebuild each other's library at every
start; and a build killed mid-compile leaves its lock file behind, on which every later process
waits forever, silently. Here instead:

- The library lives in `<cache>/<key>/<name>.so`, where the key hashes the sources' bytes, the
  compiler flags, torch's version and the Python ABI: same sources, one build, wherever they lie.
- A present library is loaded directly (no compiler, no build file, no torch lock).
- A build holds an flock on `<cache>/<key>/.lock`, which the kernel releases when its holder dies
  (even by SIGKILL); a process that finds it held says so, naming the holder's pid, and waits at
  most $LLAMA_KERNELS_WAIT_S seconds (300; a holder stopped by Ctrl-Z would hold it forever). Under
  it, leftovers of killed builds are swept, the sources compile in a scratch folder, and the finished
  library is renamed into place: a build either completes or leaves nothing that another process
  waits on or loads.

The cache is `$LLAMA_KERNELS_CACHE`, else `$XDG_CACHE_HOME/llama-toolchain/kernels` (~/.cache/...).
Non-goals: no CUDA sources, no cross-compiling, no eviction of old keys.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import logging
import os
import platform
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

log = logging.getLogger(__name__)

KEY_CHARS = 16  # of the sha256: the folder name and the library's suffix
DEFAULT_WAIT_S = 300.0  # for another process's build: the decode kernels take about a minute on one core
WAIT_POLL_S = 0.2
COMPILER_ERROR = re.compile(r"\berror:")  # gcc's and clang's "error:", "fatal error:"; not -Werror, -Wno-error=


def cache_dir() -> Path:
    """Where built libraries live (see the module docstring)."""
    if env := os.environ.get("LLAMA_KERNELS_CACHE"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "llama-toolchain" / "kernels"


def kernel_key(sources: Sequence[Path], headers: Sequence[Path], cflags: Sequence[str]) -> str:
    """Hex digest of what the library depends on: file names and bytes, flags, torch, Python, machine."""
    digest = hashlib.sha256()
    for path in [*sources, *headers]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for part in (*cflags, torch.__version__, sys.implementation.cache_tag, platform.machine()):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:KEY_CHARS]


def missing_tools() -> str | None:
    """What the build needs and this machine lacks (a C++ compiler, ninja), as a phrase; None if nothing."""
    compiler = os.environ.get("CXX", "c++")
    # CXX may carry a launcher or flags ("ccache g++", "g++ -fsomething"): ninja runs it through a shell.
    words = shlex.split(compiler)
    if not words or shutil.which(words[0]) is None:
        return f"no C++ compiler ({compiler}; on Debian: apt-get install g++)"
    if shutil.which("ninja", path=_tool_path()) is None:
        return "no ninja (pip install ninja, or apt-get install ninja-build)"
    return None


def _tool_path() -> str:
    # The running interpreter's scripts folder holds pip's ninja even when the venv is not activated.
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """Hold the flock on lock_file (its content: the holder's pid). Waits for another holder at most
    $LLAMA_KERNELS_WAIT_S seconds (default 300), saying so: a holder stopped by SIGSTOP or Ctrl-Z
    never releases it. Raises TimeoutError past the wait, ValueError on a bad LLAMA_KERNELS_WAIT_S."""
    with open(lock_file, "a+b") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the kernel if its holder dies
        except BlockingIOError:
            _wait_for_lock(f)
        try:
            f.truncate(0)
            f.write(f"{os.getpid()}\n".encode())
            f.flush()
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _wait_for_lock(f: io.BufferedRandom) -> None:
    wait_s = _wait_bound()
    f.seek(0)
    holder = f.read().decode(errors="replace").strip() or "unknown"
    log.warning("Waiting for another process (pid %s) that is compiling the CPU decode kernels (at most %g s: "
                "LLAMA_KERNELS_WAIT_S) ...", holder, wait_s)  # fmt: skip
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"pid {holder} was still compiling them after {wait_s:g} s; "
                                   "LLAMA_KERNELS_WAIT_S sets the wait") from None  # fmt: skip
            time.sleep(WAIT_POLL_S)


def _wait_bound() -> float:
    text = os.environ.get("LLAMA_KERNELS_WAIT_S", "")
    if not text:
        return DEFAULT_WAIT_S
    try:
        wait_s = float(text)
    except ValueError:
        wait_s = -1.0
    if not 0 <= wait_s < float("inf"):
        raise ValueError(f"LLAMA_KERNELS_WAIT_S must be a number of seconds, not {text!r}")
    return wait_s


def load_library(name: str, sources: Sequence[Path], headers: Sequence[Path], cflags: Sequence[str]) -> Path:
    """Load the library built from `sources` (building it first if no process ever did); its path.

    Raises OSError (a missing compiler or ninja, named), RuntimeError (the compiler's first error line,
    then torch's message with the compiler's output), TimeoutError (another process's build outlasted LLAMA_KERNELS_WAIT_S) or ValueError (a
    bad LLAMA_KERNELS_WAIT_S) when it cannot be built or loaded; the caller decides what that means.
    """
    key = kernel_key(sources, headers, cflags)
    folder = cache_dir() / key
    library = folder / f"{name}_{key}.so"
    if not library.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with _exclusive(folder / ".lock"):
            if not library.is_file():  # another process may have built it while we waited
                _build(name, key, sources, headers, cflags, folder, library)
                return library  # torch's load() has loaded it already
    torch.ops.load_library(str(library))
    return library


def _build(name: str, key: str, sources: Sequence[Path], headers: Sequence[Path], cflags: Sequence[str],
           folder: Path, library: Path) -> None:  # fmt: skip
    if (missing := missing_tools()) is not None:
        raise OSError(missing)
    for stale in folder.glob("build-*"):  # a killed build's scratch: we hold the lock, so nobody uses it
        shutil.rmtree(stale, ignore_errors=True)
    log.warning("Compiling the CPU decode kernels once (about a minute); later starts reuse them from %s.", folder)
    scratch = Path(tempfile.mkdtemp(prefix="build-", dir=folder))
    try:
        for path in [*sources, *headers]:  # the build file then names only the scratch folder
            shutil.copy2(path, scratch / path.name)
        with contextlib.redirect_stderr(io.StringIO()):  # torch < 2.8 prints CUDA noise on this import
            from torch.utils.cpp_extension import load

        os.environ["PATH"] = _tool_path()
        with _compiler_as_one_program(scratch):
            try:
                load(
                    name=f"{name}_{key}",
                    sources=[str(scratch / p.name) for p in sources],
                    extra_include_paths=[str(scratch)],
                    extra_cflags=list(cflags),
                    build_directory=str(scratch),
                    is_python_module=False,
                )
            except RuntimeError as e:
                raise RuntimeError(_compiler_error_first(str(e), scratch)) from e
        os.replace(scratch / f"{name}_{key}.so", library)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _compiler_error_first(message: str, scratch: Path) -> str:
    # torch's message starts with ninja's command line; a reader wants the compiler's first error
    # ("linear.cpp:3:10: fatal error: Python.h: No such file or directory"), shown first, then the rest.
    first = next((line.strip() for line in message.splitlines() if COMPILER_ERROR.search(line)), None)
    return message if first is None else f"{first.replace(f'{scratch}{os.sep}', '')}\n{message}"


@contextlib.contextmanager
def _compiler_as_one_program(scratch: Path) -> Iterator[None]:
    # torch quotes $CXX as one program name in its build file, so "ccache g++" or "g++ -fsomething"
    # would be run as a program of that name: such a CXX becomes a script that runs those words.
    compiler = os.environ.get("CXX", "c++")
    words = shlex.split(compiler)
    if len(words) < 2:
        yield
        return
    script = scratch / "cxx.sh"
    script.write_text(f'#!/bin/sh\nexec {shlex.join(words)} "$@"\n')
    script.chmod(0o755)
    os.environ["CXX"] = str(script)
    try:
        yield
    finally:
        os.environ["CXX"] = compiler
