"""Fixtures: a fake Meta CDN holding a small Llama3.2-1B, fast retries, and an in-process `llama` runner."""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from download.cdn import FakeCDN
from llama_cli.app import main
from llama_core.download import fetch, sources

MODEL = "Llama3.2-1B"
FOLDER = "Llama-3.2-1B"  # its folder behind the signed URL
PART = 1 << 20  # 1 MiB parts in tests: a 3.5 MiB shard is 4 ranged requests


def model_files() -> dict[str, bytes]:
    rng = random.Random(0)
    return {
        "tokenizer.model": rng.randbytes(2000),
        "params.json": b'{"dim": 2048, "n_layers": 16}',
        "consolidated.00.pth": rng.randbytes(3 * PART + PART // 2),
    }


def write_model(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "checklist.chk").write_text("".join(f"{hashlib.md5(data).hexdigest()}  ./{name}\n" for name, data in files.items()))


@pytest.fixture
def files() -> dict[str, bytes]:
    return model_files()


@pytest.fixture
def cdn(tmp_path: Path, files: dict[str, bytes]) -> Iterator[FakeCDN]:
    write_model(tmp_path / "cdn" / FOLDER, files)
    with FakeCDN(tmp_path / "cdn") as server:
        yield server


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small parts and millisecond backoff, so cuts and retries cost nothing."""
    options = functools.partial(fetch.FetchOptions, part_size=PART, backoff_s=0.001, retries=2)
    monkeypatch.setattr(sources, "FetchOptions", options)


@pytest.fixture
def llama(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run `llama <argv>` in-process; return (exit status, stdout, stderr)."""
    monkeypatch.delenv("LLAMA_DEBUG", raising=False)
    monkeypatch.setenv("COLUMNS", "200")

    def run(*argv: str, meta_url: str | None = None) -> tuple[int, str, str]:
        """`meta_url` goes in LLAMA_META_URL, as a user should pass it (not where `ps` shows it)."""
        with monkeypatch.context() as scope:
            if meta_url is not None:
                scope.setenv("LLAMA_META_URL", meta_url)
            rc = main(list(argv))
        out, err = capsys.readouterr()
        return rc, out, err

    return run
