"""Checksum lists of a model folder: read them, verify the files against them, write our own.

Two lists, both in `md5sum` / `sha256sum` format (`<hex>  ./<path>`), the algorithm told by the digest's length:

    checklist.chk      Meta's, shipped with every signed-URL download (md5)
    checksums.sha256   ours, written after Hugging Face and demo-model downloads (sha256)
"""

from __future__ import annotations

import enum
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import anyio

from llama_core.errors import CheckpointError

CHECKLIST = "checklist.chk"
SHA256_LIST = "checksums.sha256"
MANIFESTS = (CHECKLIST, SHA256_LIST)
ALGORITHMS = {32: "md5", 40: "sha1", 64: "sha256"}  # hex digest length -> hashlib name
READ_SIZE = 8 * 2**20


class FileStatus(enum.StrEnum):
    ok = "ok"
    missing = "missing"
    mismatch = "checksum mismatch"


@dataclass(frozen=True, slots=True)
class FileCheck:
    """One listed file: its status, and the digests compared (`actual` is None when it is missing)."""

    name: str
    status: FileStatus
    algorithm: str
    expected: str
    actual: str | None


def parse_manifest(text: str, source: str = CHECKLIST) -> list[tuple[str, str]]:
    """(path, hex digest) pairs of a `<hex>  ./<path>` list; `*path` (binary mode) is accepted too."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        digest, _, name = line.strip().partition(" ")
        name = name.strip().removeprefix("*").removeprefix("./")
        if len(digest) not in ALGORITHMS or not name or any(c not in "0123456789abcdefABCDEF" for c in digest):
            raise CheckpointError(f"{source} line {number} is not '<checksum>  <file>': {line.strip()[:80]!r}")
        entries.append((name, digest.lower()))
    return entries


def manifest_entries(folder: Path) -> list[tuple[str, str]]:
    """Every (path, digest) listed in `folder`'s checksum lists; CheckpointError if it has none."""
    entries: list[tuple[str, str]] = []
    found = False
    for name in MANIFESTS:
        path = folder / name
        if path.is_file():
            found = True
            entries += parse_manifest(path.read_text(), name)
    if not found:
        raise CheckpointError(
            f"{folder} has no checksum list ({' or '.join(MANIFESTS)}), so its files cannot be verified; download the model again."
        )
    return entries


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of the file at `path` (hashlib releases the GIL, so threads hash in parallel)."""
    h = hashlib.new(algorithm)
    with path.open("rb") as f:
        while block := f.read(READ_SIZE):
            h.update(block)
    return h.hexdigest()


def check_file(folder: Path, name: str, expected: str) -> FileCheck:
    """Compare one listed file with its digest."""
    algorithm = ALGORITHMS[len(expected)]
    path = folder / name
    if not path.is_file():
        return FileCheck(name, FileStatus.missing, algorithm, expected, None)
    actual = file_digest(path, algorithm)
    return FileCheck(name, FileStatus.ok if actual == expected else FileStatus.mismatch, algorithm, expected, actual)


async def verify_files(folder: Path, max_parallel: int | None = None) -> list[FileCheck]:
    """Check every file listed in `folder`'s checksum lists, in list order; big files hash in parallel threads."""
    entries = manifest_entries(folder)
    results: list[FileCheck | None] = [None] * len(entries)
    limiter = anyio.CapacityLimiter(max_parallel or min(8, os.cpu_count() or 1))

    async def run(i: int, name: str, expected: str) -> None:
        results[i] = await anyio.to_thread.run_sync(check_file, folder, name, expected, limiter=limiter)

    async with anyio.create_task_group() as tg:
        for i, (name, expected) in enumerate(entries):
            tg.start_soon(run, i, name, expected)
    return [r for r in results if r is not None]


def write_sha256_list(folder: Path, digests: dict[str, str]) -> Path:
    """Write `checksums.sha256` for `digests` (path -> sha256 hex), sorted by path."""
    path = folder / SHA256_LIST
    path.write_text("".join(f"{digest}  ./{name}\n" for name, digest in sorted(digests.items())))
    return path


def sha256_of_files(folder: Path, names: list[str]) -> dict[str, str]:
    """sha256 of each named file under `folder`."""
    return {name: file_digest(folder / name, "sha256") for name in names}
