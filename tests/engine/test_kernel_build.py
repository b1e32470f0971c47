"""The kernel cache (llama_core/engine/kernels/build.py) on a tiny real C++ library: one build shared by
two checkouts, a build killed mid-compile that the next process neither waits on nor loads, and a
missing compiler said in words. These build a three-line library (seconds), not the decode kernels."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

SOURCE = 'extern "C" int llama_answer() { return 42; }\n'

# One process: build or load the library from the sources in argv[1], call it, print its path.
LOAD = textwrap.dedent("""
    import ctypes, sys
    from pathlib import Path
    from llama_core.engine.kernels.build import load_library
    src = Path(sys.argv[1])
    library = load_library("tiny", [src / "tiny.cpp"], [src / "tiny.h"], ["-O1"])
    assert ctypes.CDLL(str(library)).llama_answer() == 42
    print(library)
""")


def checkout(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "tiny.cpp").write_text(SOURCE)
    (root / "tiny.h").write_text("// nothing\n")
    return root


def load(src: Path, cache: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", LOAD, str(src)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=os.environ | {"LLAMA_KERNELS_CACHE": str(cache), "OMP_NUM_THREADS": "1"} | env, start_new_session=True,
    )  # fmt: skip


def finished(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=240)
    return proc.returncode, out.strip(), err


def test_two_checkouts_share_one_build_and_a_loaded_library_needs_no_compiler(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    rc, first, err = finished(load(checkout(tmp_path / "a"), cache))
    assert rc == 0, err
    assert "Compiling the CPU decode kernels once" in err
    # The second checkout lies elsewhere and has no compiler at all: it loads the first one's build.
    rc, second, err = finished(load(checkout(tmp_path / "b"), cache, CXX="/nonexistent"))
    assert (rc, second, err) == (0, first, "")
    assert sorted(p.name for p in Path(first).parent.iterdir()) == [".lock", Path(first).name]
    # Changed sources are another key: a new build beside the first.
    (tmp_path / "b" / "tiny.h").write_text("// changed\n")
    rc, third, err = finished(load(tmp_path / "b", cache))
    assert rc == 0 and third != first and Path(first).is_file(), err


def test_a_build_killed_mid_compile_leaves_nothing_to_wait_on_or_load(tmp_path: Path) -> None:
    cache, src = tmp_path / "cache", checkout(tmp_path / "src")
    marker = tmp_path / "compiling"
    slow = tmp_path / "slow-c++"
    slow.write_text(f'#!/bin/sh\ntouch "{marker}"\nsleep 120\nexec c++ "$@"\n')
    slow.chmod(0o755)
    doomed = load(src, cache, CXX=str(slow))
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert doomed.poll() is None and time.monotonic() < deadline, doomed.communicate()
        time.sleep(0.1)
    os.killpg(doomed.pid, signal.SIGKILL)  # the build and its compiler, mid-compile
    doomed.communicate()
    (folder,) = cache.iterdir()
    assert not list(folder.glob("*.so"))  # nothing half-built to load
    rc, library, err = finished(load(src, cache))  # neither waits for the dead build nor trusts its files
    assert rc == 0, err
    assert sorted(p.name for p in folder.iterdir()) == [".lock", Path(library).name]


def test_a_missing_compiler_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llama_core.engine.kernels.build import load_library

    monkeypatch.setenv("LLAMA_KERNELS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    src = checkout(tmp_path / "src")
    with pytest.raises(OSError, match=r"^no C\+\+ compiler \(/nonexistent/c\+\+; on Debian: apt-get install g\+\+\)$"):
        load_library("tiny", [src / "tiny.cpp"], [src / "tiny.h"], ["-O1"])


def test_a_compiler_given_with_flags_or_a_launcher_builds(tmp_path: Path) -> None:
    # CXX="ccache g++" or "g++ -fsomething" is a compiler (was: "no C++ compiler"), and its words reach the build.
    cxx = shutil.which("c++")
    assert cxx is not None
    src = checkout(tmp_path / "src")
    (src / "tiny.cpp").write_text('extern "C" int llama_answer() { return LLAMA_ANSWER; }\n')
    rc, library, err = finished(load(src, tmp_path / "cache", CXX=f"{cxx} -DLLAMA_ANSWER=42"))
    assert rc == 0, err
    assert sorted(p.name for p in Path(library).parent.iterdir()) == [".lock", Path(library).name]


def test_a_failed_build_says_the_compilers_error_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llama_core.engine.kernels.build import load_library

    monkeypatch.setenv("LLAMA_KERNELS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", os.environ["PATH"])  # a build puts the venv's scripts first
    src = checkout(tmp_path / "src")
    (src / "tiny.cpp").write_text('#include "llama_missing.h"\n' + SOURCE)
    with pytest.raises(RuntimeError) as raised:
        load_library("tiny", [src / "tiny.cpp"], [src / "tiny.h"], ["-O1"])
    first, rest = str(raised.value).split("\n", 1)
    # gcc: "...: No such file or directory"; clang: "'llama_missing.h' file not found"
    assert re.fullmatch(r"tiny\.cpp:1:10: fatal error: '?llama_missing\.h'?(: No such file or directory| file not found)",
                        first), str(raised.value)  # fmt: skip
    assert rest.startswith("Error building extension 'tiny_")  # torch's message, ninja's and the compiler's output
    (folder,) = (tmp_path / "cache").iterdir()
    assert [p.name for p in folder.iterdir()] == [".lock"]


@pytest.mark.skipif(os.environ.get("LLAMA_REQUIRE_KERNELS") != "1", reason="CI sets LLAMA_REQUIRE_KERNELS=1")
def test_the_decode_kernels_build_on_this_machine() -> None:
    # .ci/run sets LLAMA_REQUIRE_KERNELS=1, so a CI machine where they silently fall back to torch fails here.
    from llama_core.engine.kernels import cpu_kernels_available

    assert cpu_kernels_available()


# The engine where no compiler is found and nothing is cached: one warning, then torch's path.
FALLBACK = textwrap.dedent("""
    import logging, torch
    import torch.nn.functional as F
    logging.basicConfig(format="%(message)s")
    from llama_core.engine import kernels
    x, w = torch.randn(2, 64), torch.randn(8, 64)
    q = kernels.quantize_int8(w)
    outs = [kernels.linear(x, w), kernels.linear(x, q), kernels.linear(x, w)]
    print(kernels.cpu_kernels_available(), torch.equal(outs[0], F.linear(x, w)),
          torch.equal(outs[1], F.linear(x, q.dequantize(torch.float32))))
""")


def test_without_a_compiler_the_engine_says_once_that_it_takes_the_slower_path(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", FALLBACK], capture_output=True, text=True, timeout=240,
        env=os.environ | {"LLAMA_KERNELS_CACHE": str(tmp_path / "empty"), "CXX": "/nonexistent/c++", "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert (proc.returncode, proc.stdout) == (0, "False True True\n"), proc.stderr
    assert proc.stderr == ("CPU decode kernels unavailable (no C++ compiler (/nonexistent/c++; on Debian: apt-get install "
                           "g++)); using torch's slower linear.\n")


def test_without_avx2_the_engine_says_once_that_it_takes_the_slower_path(tmp_path: Path) -> None:
    # ATEN_CPU_CAPABILITY=default is what torch reports on a CPU without AVX2 (an old x86, or ARM's DEFAULT).
    proc = subprocess.run(
        [sys.executable, "-c", FALLBACK], capture_output=True, text=True, timeout=240,
        env=os.environ | {"LLAMA_KERNELS_CACHE": str(tmp_path / "empty"), "ATEN_CPU_CAPABILITY": "default",
                          "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert (proc.returncode, proc.stdout) == (0, "False True True\n"), proc.stderr
    assert proc.stderr == "CPU decode kernels need AVX2 (this CPU reports DEFAULT); using torch's slower linear.\n"
    assert not (tmp_path / "empty").exists()  # nothing built, nor tried

# Holds the build lock of the decode kernels' key (as a build in progress, or one stopped by Ctrl-Z, does).
HOLD = textwrap.dedent("""
    import time
    from llama_core.engine.kernels import CFLAGS, HEADERS, KERNEL_DIR, SOURCES
    from llama_core.engine.kernels.build import _exclusive, cache_dir, kernel_key
    folder = cache_dir() / kernel_key([KERNEL_DIR / n for n in SOURCES], [KERNEL_DIR / n for n in HEADERS], CFLAGS)
    folder.mkdir(parents=True)
    with _exclusive(folder / ".lock"):
        print(folder, flush=True)
        time.sleep(600)
""")


def test_a_build_held_by_another_process_is_waited_on_for_a_bounded_time_saying_so(tmp_path: Path) -> None:
    import torch

    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("the decode kernels need AVX2")
    env = os.environ | {"LLAMA_KERNELS_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    holder = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout is not None
        folder = Path(holder.stdout.readline().strip())
        proc = subprocess.run(
            [sys.executable, "-c", FALLBACK], capture_output=True, text=True, timeout=240,
            env=env | {"LLAMA_KERNELS_WAIT_S": "1"},
        )  # fmt: skip
    finally:
        holder.kill()
        holder.communicate()
    assert (proc.returncode, proc.stdout) == (0, "False True True\n"), proc.stderr
    assert proc.stderr == (
        f"Waiting for another process (pid {holder.pid}) that is compiling the CPU decode kernels (at most 1 s: "
        "LLAMA_KERNELS_WAIT_S) ...\n"
        f"CPU decode kernels unavailable (pid {holder.pid} was still compiling them after 1 s; LLAMA_KERNELS_WAIT_S "
        "sets the wait); using torch's slower linear.\n"
    )
    assert [p.name for p in folder.iterdir()] == [".lock"]  # it built nothing


def test_a_failed_build_of_the_decode_kernels_names_the_compilers_error(tmp_path: Path) -> None:
    import torch

    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("the decode kernels need AVX2")
    cxx = shutil.which("c++")
    assert cxx is not None
    proc = subprocess.run(
        [sys.executable, "-c", FALLBACK], capture_output=True, text=True, timeout=240,
        env=os.environ | {"LLAMA_KERNELS_CACHE": str(tmp_path / "cache"), "CXX": f"{cxx} -include llama_missing.h",
                          "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert (proc.returncode, proc.stdout) == (0, "False True True\n"), proc.stderr
    *_, failed = proc.stderr.splitlines()
    assert re.fullmatch(r"CPU decode kernels unavailable \(.*fatal error: '?llama_missing\.h'?(: No such file or "
                        r"directory| file not found)\); using torch's slower linear\.", failed), proc.stderr  # fmt: skip


def test_the_wait_for_a_held_build_lock_is_bounded_by_a_valid_llama_kernels_wait_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from llama_core.engine.kernels.build import _exclusive

    lock = tmp_path / ".lock"
    with _exclusive(lock):  # flock conflicts between two opens of the file, even in one process
        monkeypatch.setenv("LLAMA_KERNELS_WAIT_S", "soon")
        with pytest.raises(ValueError, match=r"^LLAMA_KERNELS_WAIT_S must be a number of seconds, not 'soon'$"):
            with _exclusive(lock):
                pass
        monkeypatch.setenv("LLAMA_KERNELS_WAIT_S", "0")
        with pytest.raises(TimeoutError, match=rf"^pid {os.getpid()} was still compiling them after 0 s; "):
            with _exclusive(lock):
                pass
    assert caplog.messages == [
        f"Waiting for another process (pid {os.getpid()}) that is compiling the CPU decode kernels (at most 0 s: "
        "LLAMA_KERNELS_WAIT_S) ..."
    ]
    with _exclusive(lock):  # released: taken at once, whatever the bound
        assert lock.read_text() == f"{os.getpid()}\n"
