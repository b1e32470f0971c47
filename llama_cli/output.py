"""Printing for the CLI: one rich Console policy, the reference's ASCII grid tables, value formats.

Output is deterministic when stdout is not a terminal: no colour, and a fixed width (`$COLUMNS`,
else 160) so tables never wrap differently between machines.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported on first print, not at `llama --help` time
    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text

PIPE_WIDTH = 160
SPECIAL_TOKEN = re.compile(r"<\|[a-z_0-9]+\|>")
NEWLINE_MARK = "↵"
NEWLINE_NOTE = f"{NEWLINE_MARK} represents newline"


def console(stderr: bool = False) -> Console:
    """A Console on stdout (or stderr): a terminal's own width, else a fixed one without colour."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    width = None if tty else int(os.environ.get("COLUMNS") or PIPE_WIDTH)
    # stderr carries one-line errors: never wrap them
    return Console(file=stream, width=width, highlight=False, soft_wrap=stderr, emoji=False)


def grid(headers: Sequence[str] | None, rows: Iterable[Sequence[RenderableType]]) -> Table:
    """The reference's `+---+` table, a rule between every row; no header row when `headers` is None."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(*(headers or ()), box=box.ASCII2, show_lines=True, show_header=headers is not None)
    if headers is None:
        table.add_column()
        table.add_column()
    for row in rows:  # plain strings stay plain: "[stdout]" is text here, not rich markup
        table.add_row(*(Text(cell) if isinstance(cell, str) else cell for cell in row))
    return table


def context_length(tokens: int) -> str:
    """131072 -> "128K"; lengths under 1K print in full."""
    return f"{tokens // 1024}K" if tokens >= 1024 and tokens % 1024 == 0 else str(tokens)


def hardware(gpu_count: int, memory_gb_per_gpu: int) -> str:
    """(8, 20) -> "8 GPUs, each >= 20GB VRAM", as the reference prints it; (0, _) -> "runs on a CPU"."""
    if gpu_count == 0:
        return "runs on a CPU"
    return f"{gpu_count} GPU{'s' if gpu_count > 1 else ''}, each >= {memory_gb_per_gpu}GB VRAM"


def prompt_text(prompt: str, raw: bool) -> Text:
    """A rendered prompt with special tokens bold yellow, and newlines shown as `↵` unless `raw`."""
    from rich.text import Text

    text = Text(prompt if raw else prompt.replace("\n", f"{NEWLINE_MARK}\n"))
    text.highlight_regex(SPECIAL_TOKEN.pattern, "bold yellow")
    return text


def template_notes(notes: str, raw: bool) -> str:
    """A template's notes, led by "↵ represents newline" exactly when the marks are shown."""
    notes = notes.removeprefix(NEWLINE_NOTE).lstrip("\n")
    return notes if raw else "\n".join(n for n in (NEWLINE_NOTE, notes) if n)
