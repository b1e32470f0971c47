"""`llama download --source huggingface` through huggingface_hub, against a loopback Hub named by HF_ENDPOINT."""

from __future__ import annotations

import io
import hashlib
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from download.hub import FakeHub
from llama_core import paths

MODEL, REPO = "Llama3.2-1B", "meta-llama/Llama-3.2-1B"
GATED_MODEL, GATED_REPO, TOKEN = "Llama3.1-8B", "meta-llama/Llama-3.1-8B", "hf_fakeToken123"


def repo_files() -> dict[str, bytes]:
    rng = random.Random(1)
    return {
        "config.json": b'{"architectures": ["LlamaForCausalLM"]}',
        "model.safetensors": rng.randbytes(5000),
        "original/consolidated.00.pth": rng.randbytes(300_000),
        "original/params.json": b'{"dim": 2048}',
        "original/tokenizer.model": rng.randbytes(2000),
    }


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    import huggingface_hub.constants as hf

    # huggingface_hub reads its environment once, at import: pin what it already read, too.
    for name in ("HF_HUB_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(hf, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))
    with FakeHub({REPO: repo_files(), GATED_REPO: repo_files()}, gated={GATED_REPO: TOKEN}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        yield server


def _tree(dest: Path) -> list[str]:
    return sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() and ".cache" not in p.parts)


def test_download_keeps_original_and_skips_safetensors(llama, hub):
    rc, out, err = llama("download", "--source", "huggingface", "--model-id", MODEL)
    dest = paths.model_checkpoint_dir(MODEL)
    assert rc == 0, err
    assert out == f"Successfully downloaded model to {dest}\n"
    assert err == f"Downloaded {REPO} (302.1 KB)\n"
    files = repo_files()
    assert _tree(dest) == ["checksums.sha256", "config.json", "original/consolidated.00.pth", "original/params.json", "original/tokenizer.model"]
    for name in _tree(dest)[1:]:
        assert (dest / name).read_bytes() == files[name]
    # sha256 of each file: the Hub's LFS oid for the big ones, computed here for the small ones.
    assert (dest / "checksums.sha256").read_text() == "".join(
        f"{hashlib.sha256(files[n]).hexdigest()}  ./{n}\n" for n in _tree(dest)[1:]
    )
    assert all(path.startswith(("/api/", f"/{REPO}/resolve/")) for _, path, _ in hub.requests)
    assert not any("model.safetensors" in path for _, path, _ in hub.requests)

    rc, out, _ = llama("model", "verify-download", "-m", MODEL)
    assert rc == 0 and "original/consolidated.00.pth | sha256   | ✓ ok" in out
    assert out.endswith("All 4 files match their checksums.\n")


def test_ignore_patterns(llama, hub):
    rc, _, err = llama("download", "--source", "huggingface", "-m", MODEL, "--ignore-patterns", "*original*,config.json")
    assert rc == 0, err
    assert _tree(paths.model_checkpoint_dir(MODEL)) == ["checksums.sha256", "model.safetensors"]


def test_gated_repo_without_token_is_explained(llama, hub):
    rc, out, err = llama("download", "--source", "huggingface", "-m", GATED_MODEL)
    assert (rc, out) == (1, "")
    assert err == (
        f"Error: {GATED_REPO} is gated: accept its license at {hub.endpoint}/{GATED_REPO} with your account, "
        "then pass --hf-token or set HF_TOKEN (or run `hf auth login`).\n"
    )


@pytest.mark.parametrize("how", ["flag", "env", "stdin"])
def test_gated_repo_with_token(llama, hub, monkeypatch, how):
    argv = ["download", "--source", "huggingface", "-m", GATED_MODEL]
    if how == "flag":
        argv += ["--hf-token", TOKEN]
    elif how == "stdin":
        argv += ["--hf-token", "-"]
        monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN + "\n"))
    else:
        monkeypatch.setenv("HF_TOKEN", TOKEN)
    rc, out, err = llama(*argv)
    assert rc == 0, err
    assert TOKEN not in out + err
    warning = "warning: --hf-token on the command line is visible to other users in `ps`; use HF_TOKEN instead"
    assert (warning in err.splitlines()) is (how == "flag")
    assert {auth for _, _, auth in hub.requests if auth} == {f"Bearer {TOKEN}"}


def test_missing_repo(llama, hub):
    rc, _, err = llama("download", "--source", "huggingface", "-m", "Llama3.2-3B")
    assert rc == 1
    assert err == (
        f"Error: Repository 'meta-llama/Llama-3.2-3B' not found on the Hugging Face Hub ({hub.endpoint}); "
        "if it is private, pass --hf-token or set HF_TOKEN.\n"
    )


def test_a_hub_answer_of_another_shape_is_one_line(llama, hub):
    hub.odd = True
    rc, _, err = llama("download", "--source", "huggingface", "--model-id", MODEL)
    assert (rc, err) == (1, f"Error: The Hugging Face Hub at {hub.endpoint} answered about {REPO} in a form this "
                            "version does not understand (no 'id'). Check HF_ENDPOINT, or upgrade llama-toolchain and "
                            "huggingface_hub.\n")
    assert not paths.model_checkpoint_dir(MODEL).exists()


def test_unreachable_hub(llama, hub, monkeypatch):
    endpoint = hub.endpoint
    hub.__exit__()
    rc, _, err = llama("download", "--source", "huggingface", "-m", MODEL)
    assert rc == 1
    assert err == (
        f"Error: Could not reach the Hugging Face Hub at {endpoint} (ConnectError). "
        "Check the network (or HF_ENDPOINT) and run it again.\n"
    )


def test_offline_mode_is_named(llama, hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rc, _, err = llama("download", "--source", "huggingface", "-m", MODEL)
    assert (rc, err) == (1, "Error: HF_HUB_OFFLINE is set, so huggingface_hub will not download; unset it and run the command again.\n")
    assert hub.requests == []


def _can_mount_tmpfs() -> bool:
    import subprocess

    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs `unshare -rm` to mount a small tmpfs (user namespaces)")
def test_a_disk_too_small_is_one_line_before_anything_is_fetched(hub, tmp_path: Path) -> None:
    # ~/.llama on a 200 KiB tmpfs (a private mount namespace) for a 302 KB download: huggingface_hub
    # warned twice with its source lines, then the write failed as "unexpected OSError: [Errno 28]".
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    script = f'mount -t tmpfs -o size=200k tmpfs {home} || exit 99; "$PYTHON" -m llama_cli download --source huggingface -m {MODEL}'
    env = os.environ | {"PYTHON": sys.executable, "LLAMA_STACK_CONFIG_DIR": str(home), "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert (done.returncode, done.stderr) == (1, f"Error: Not enough disk space in {home / 'checkpoints' / MODEL}: the download "
                                                 "needs 302.1 KB more, 204.8 KB is free. Free some space (or set "
                                                 "LLAMA_STACK_CONFIG_DIR) and run it again.\n")
    assert [path for _, path, _ in hub.requests if "/resolve/" in path] == []  # no file fetched
