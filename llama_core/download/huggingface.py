"""`--source huggingface`: a model's repo through huggingface_hub, into the model's checkpoint folder.

huggingface_hub does the transfer (resume, parallel files, its own cache layout under
`<dest>/.cache/huggingface`). We add: HF_ENDPOINT read at call time (huggingface_hub reads it once,
at import), one-line errors for gated, missing and unreachable repos, progress through `Progress`
by watching the folder grow, and `checksums.sha256` from the Hub's LFS sha256s for verify-download.
The token comes from `--hf-token`, else huggingface_hub's own `HF_TOKEN` / login; it is never printed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from llama_core.download.fetch import NullProgress, Progress, check_disk, write_error
from llama_core.download.verify import sha256_of_files, write_sha256_list
from llama_core.errors import DownloadError, UnsupportedError, first_error
from llama_core.models import Model

# The original's default: keep the Meta-format weights under original/, skip the safetensors copy.
DEFAULT_IGNORE = ("*.safetensors",)
DEFAULT_ENDPOINT = "https://huggingface.co"
POLL_S = 0.25
_HTTP_PACKAGES = frozenset({"httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3"})


@dataclass(frozen=True, slots=True)
class HubFile:
    path: str
    size: int
    sha256: str | None  # the LFS object's sha256; None for small files kept in git


def endpoint() -> str:
    """The Hub to talk to: `$HF_ENDPOINT`, else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "on", "yes", "true")
    return env or bool(constants.HF_HUB_OFFLINE)


def _hub_error(error: Exception, repo: str, hub: str) -> DownloadError | None:
    """One line for a huggingface_hub failure, or None if it is not one we know."""
    from huggingface_hub import errors

    if isinstance(error, errors.GatedRepoError):
        return DownloadError(
            f"{repo} is gated: accept its license at {hub}/{repo} with your account, then pass --hf-token "
            "or set HF_TOKEN (or run `hf auth login`)."
        )
    if isinstance(error, errors.RepositoryNotFoundError):
        return DownloadError(
            f"Repository '{repo}' not found on the Hugging Face Hub ({hub}); if it is private, pass --hf-token or set HF_TOKEN."
        )
    if isinstance(error, errors.RevisionNotFoundError | errors.EntryNotFoundError):
        return DownloadError(f"{repo}: {type(error).__name__} on the Hugging Face Hub ({hub}).")
    if isinstance(error, errors.LocalEntryNotFoundError | errors.OfflineModeIsEnabled):
        return DownloadError(f"Could not reach the Hugging Face Hub at {hub} to download {repo}. Check the network (or HF_ENDPOINT) and run it again.")
    if type(error).__module__.partition(".")[0] in _HTTP_PACKAGES:  # connect / read failures of its HTTP client
        return DownloadError(f"Could not reach the Hugging Face Hub at {hub} ({type(error).__name__}). Check the network (or HF_ENDPOINT) and run it again.")
    if isinstance(error, errors.HfHubHTTPError):
        status = getattr(getattr(error, "response", None), "status_code", "?")
        return DownloadError(f"The Hugging Face Hub at {hub} answered {status} while downloading {repo}; run it again later.")
    return None


def _list_files(api: Any, repo: str, ignore_patterns: Sequence[str], hub: str) -> tuple[str, list[HubFile]]:
    from huggingface_hub.hf_api import RepoFile
    from huggingface_hub.utils import filter_repo_objects

    try:
        commit = api.model_info(repo).sha
        tree = [f for f in api.list_repo_tree(repo, revision=commit, recursive=True) if isinstance(f, RepoFile)]
    except (KeyError, TypeError, AttributeError) as e:  # huggingface_hub reading JSON of a shape it does not know
        missing = f"no {e}" if isinstance(e, KeyError) else type(e).__name__
        raise DownloadError(
            f"The Hugging Face Hub at {hub} answered about {repo} in a form this version does not understand "
            f"({missing}). Check HF_ENDPOINT, or upgrade llama-toolchain and huggingface_hub."
        ) from None
    keep = set(filter_repo_objects([f.path for f in tree], ignore_patterns=list(ignore_patterns) or None))
    return commit, [HubFile(f.path, f.size, f.lfs.sha256 if f.lfs else None) for f in tree if f.path in keep]


def _api(token: str | None, hub: str) -> Any:
    from huggingface_hub import HfApi

    from llama_core import __version__

    return HfApi(endpoint=hub, token=token, library_name="llama-toolchain", library_version=__version__)


def _snapshot(repo: str, commit: str, dest: Path, token: str | None, ignore_patterns: Sequence[str], hub: str, workers: int) -> None:
    from huggingface_hub import snapshot_download
    from tqdm.auto import tqdm

    from llama_core import __version__

    class _Silent(tqdm):  # type: ignore[misc]  # we report progress ourselves (see the module docstring)
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            super().__init__(*args, **{**kwargs, "disable": True})

    snapshot_download(
        repo,
        revision=commit,
        local_dir=dest,
        cache_dir=dest / ".cache" / "huggingface",  # its refs too: nothing lands outside the model folder
        ignore_patterns=list(ignore_patterns) or None,
        token=token,
        endpoint=hub,
        library_name="llama-toolchain",
        library_version=__version__,
        max_workers=workers,
        tqdm_class=_Silent,
    )


def _landed(dest: Path) -> int:
    # Bytes under dest, huggingface_hub's .incomplete files included: the bar moves while files download.
    total = 0
    for root, _, names in os.walk(dest):
        for name in names:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


async def download_huggingface(
    model: Model,
    dest: Path,
    *,
    token: str | None = None,
    ignore_patterns: Sequence[str] = DEFAULT_IGNORE,
    max_parallel: int = 4,
    progress: Progress | None = None,
) -> Path:
    """Download `model`'s Hugging Face repo into `dest` (skipping `ignore_patterns`); write checksums.sha256.

    Raises DownloadError with one line for a gated, missing or unreachable repo.
    """
    if model.huggingface_repo is None:
        raise UnsupportedError(f"{model.descriptor} has no Hugging Face repo; download it with --source meta.")
    if _offline():
        raise DownloadError("HF_HUB_OFFLINE is set, so huggingface_hub will not download; unset it and run the command again.")
    repo, hub, progress = model.huggingface_repo, endpoint(), progress or NullProgress()
    token = token or None
    dest.mkdir(parents=True, exist_ok=True)
    try:
        commit, files = await anyio.to_thread.run_sync(_list_files, _api(token, hub), repo, ignore_patterns, hub)
        total = sum(f.size for f in files)
        landed = min(_landed(dest), total)
        check_disk(dest, total - landed)
        progress.start(repo, total, landed)
        await _watching(dest, repo, progress, _snapshot, repo, commit, dest, token, ignore_patterns, hub, max_parallel)
    except Exception as error:
        mapped = _hub_error(error, repo, hub)
        if mapped is None and isinstance(error, OSError):  # a write: the disk filled meanwhile, a folder we may not write
            mapped = write_error(error, dest)
        if mapped is None:
            raise
        raise mapped from None
    progress.finish(repo)
    digests = {f.path: f.sha256 for f in files if f.sha256}
    small = [f.path for f in files if not f.sha256]
    digests |= await anyio.to_thread.run_sync(sha256_of_files, dest, small)
    write_sha256_list(dest, digests)
    return dest


async def _watching(dest: Path, name: str, progress: Progress, job: Any, *args: Any) -> None:
    # Run `job(*args)` in a thread; meanwhile report the folder's growth as progress of `name`.
    async def watch() -> None:
        shown = _landed(dest)
        while True:
            await anyio.sleep(POLL_S)
            now = _landed(dest)
            if now > shown:
                progress.advance(name, now - shown)
                shown = now

    async def run() -> None:
        try:
            await anyio.to_thread.run_sync(job, *args)
        finally:
            tg.cancel_scope.cancel()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            tg.start_soon(run)
    except BaseExceptionGroup as group:
        raise first_error(group) from None
