"""Downloaded models on disk: which, how big, verify one, remove one.

A model lives in `~/.llama/checkpoints/<descriptor, ':' -> '-'>/` (llama_core.paths). A folder whose
name is no registered descriptor (a checkpoint copied in by hand) is listed and handled by its name.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from llama_core import paths
from llama_core.download.verify import FileCheck, verify_files
from llama_core.errors import DownloadError, ModelNotFoundError, NotFoundError
from llama_core.models import resolve_model


@dataclass(frozen=True, slots=True)
class DownloadedModel:
    descriptor: str  # the registry's descriptor, or the folder name when no SKU matches it
    path: Path
    size: int  # bytes of every file under `path`
    modified: float  # newest modification time (epoch seconds) of a file under `path`


def folder_size(path: Path) -> tuple[int, float]:
    """(total bytes, newest mtime) of the files under `path`, symlinks not followed."""
    size, newest = 0, 0.0
    for root, _, names in os.walk(path):
        for name in names:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            size += st.st_size
            newest = max(newest, st.st_mtime)
    return size, newest


def human_size(n: float) -> str:
    """Bytes as a short decimal size: 1536 -> "1.5 KB", 16_060_522_496 -> "16.06 GB"."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}" if unit in ("GB", "TB") else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _descriptor(folder: str) -> str:
    try:
        return resolve_model(folder).descriptor
    except ModelNotFoundError:
        return folder


def downloaded_models() -> list[DownloadedModel]:
    """Every non-empty model folder under the checkpoints directory, by descriptor."""
    root = paths.checkpoints_dir()
    found = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if path.is_dir() and not path.name.startswith("."):
            size, modified = folder_size(path)
            if size:
                found.append(DownloadedModel(_descriptor(path.name), path, size, modified))
    return sorted(found, key=lambda m: m.descriptor.lower())


def model_dir(model_id: str) -> Path:
    """The folder of a downloaded model; NotFoundError if there is none."""
    try:
        path = paths.model_checkpoint_dir(resolve_model(model_id).descriptor)
    except ModelNotFoundError:
        # A hand-made folder, named exactly (no path separators: never leave the checkpoints dir).
        if Path(model_id).name != model_id or model_id in ("", ".", "..") or not (paths.checkpoints_dir() / model_id).is_dir():
            raise
        path = paths.checkpoints_dir() / model_id
    if not path.is_dir():
        raise NotFoundError(f"{model_id} is not downloaded (no folder {path}). Run `llama download --model-id {model_id}`.")
    return path


async def verify_download(model_id: str) -> tuple[Path, list[FileCheck]]:
    """Check a downloaded model's files against its checksum lists: (folder, one FileCheck per listed file)."""
    path = model_dir(model_id)
    return path, await verify_files(path)


def remove_model(model_id: str) -> Path:
    """Delete a downloaded model's folder; return the path removed.

    A folder that is a symbolic link loses the link only: its target lies outside ~/.llama and is
    the user's. Raises NotFoundError (nothing downloaded) and DownloadError (the files cannot be
    removed: permissions, a busy mount), with nothing removed or what was removed named.
    """
    path = model_dir(model_id)
    try:
        if path.is_symlink():
            path.unlink()
        else:
            shutil.rmtree(path)
    except OSError as e:
        left = "" if path.exists() else " (the folder is gone)"
        raise DownloadError(f"Could not remove {path}: {e.strerror or e}{left}.") from None
    return path
