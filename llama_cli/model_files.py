"""`llama model list --downloaded`, `llama model verify-download`, `llama model remove`: models on disk."""

from __future__ import annotations

import sys
from typing import Annotated

from cyclopts import Parameter

from llama_cli import output

ModelId = Annotated[str, Parameter(name=["--model-id", "-m"], help="Model descriptor (or its folder name).")]


def list_downloaded(json_: bool = False) -> None:
    """The table of downloaded models: descriptor, size on disk, last modified, folder."""
    import datetime as dt

    from llama_core.download import downloaded_models, human_size

    models = downloaded_models()
    if json_:
        import json

        rows = [{"model": m.descriptor, "path": str(m.path), "size": m.size, "modified": m.modified} for m in models]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    if not models:
        output.console().print("No models downloaded yet. Get one with `llama download --model-id SmolLM2-135M-Instruct`.")
        return
    rows_ = [
        (m.descriptor, human_size(m.size), dt.datetime.fromtimestamp(m.modified).strftime("%Y-%m-%d %H:%M:%S"), str(m.path))
        for m in models
    ]
    output.console().print(output.grid(("Model", "Size", "Modified Time", "Path"), rows_))


def verify_download(*, model_id: ModelId) -> None:
    """Check a downloaded model's files against its checksum list (md5 or sha256): ok, missing or mismatched."""
    import anyio

    from llama_core.download import FileStatus, verify_download as verify
    from llama_core.errors import CheckpointError

    path, checks = anyio.run(verify, model_id)
    rows = [(c.name, c.algorithm, "✓ ok" if c.status == FileStatus.ok else f"✗ {c.status}") for c in checks]
    output.console().print(output.grid(("File", "Checksum", "Status"), rows))
    bad = [c for c in checks if c.status != FileStatus.ok]
    if bad:
        names = ", ".join(f"{c.name} ({c.status})" for c in bad)
        raise CheckpointError(f"{len(bad)} of {len(checks)} files in {path} failed verification: {names}. Download the model again.")
    output.console().print(f"All {len(checks)} files match their checksums.")


def remove(
    *,
    model_id: ModelId,
    force: Annotated[bool, Parameter(name=["--force", "-f"], negative=(), help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a downloaded model's folder from ~/.llama/checkpoints."""
    from llama_core.download import human_size, model_dir, remove_model
    from llama_core.download.local import folder_size
    from llama_core.errors import InvalidRequestError

    path = model_dir(model_id)
    size = human_size(folder_size(path)[0])
    if not force:
        if not sys.stdin.isatty():
            raise InvalidRequestError(f"Not removing {path} without confirmation: add --force.")
        if input(f"Remove {path} ({size})? (y/n): ").strip().lower() not in ("y", "yes"):
            output.console().print("Nothing removed.")
            return
    target = path.resolve() if path.is_symlink() else None
    remove_model(model_id)
    if target is not None:
        output.console().print(f"Removed the link {path}; its target {target} ({size}) is kept.", markup=False, soft_wrap=True)
    else:
        output.console().print(f"Removed {path} ({size}).", markup=False, soft_wrap=True)  # a path is never wrapped
