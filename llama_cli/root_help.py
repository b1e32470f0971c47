"""`llama` and `llama --help` without importing cyclopts or rich: the root help drawn from COMMANDS.

Those two imports are most of a cold start (~150 ms of ~300), and the root help is the command a new
user types first. The layout is cyclopts' plain-text help panel; a test keeps the two identical.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Sequence

HELP_FLAG = ("--help (-h)", "Display this message and exit.")
VERSION_FLAG = ("--version", "Display application version.")
_BOLD, _CYAN, _RESET = "\x1b[1m", "\x1b[36m", "\x1b[0m"


def render(description: str, commands: Sequence[tuple[str, str]], width: int, color: bool) -> str:
    """The root help text: usage, description, then a boxed (name, help) panel `width` columns wide."""

    def paint(style: str, text: str) -> str:
        return f"{style}{text}{_RESET}" if color else text

    rows = [*commands, HELP_FLAG, VERSION_FLAG]
    name_width = max(len(name) for name, _ in rows)
    text_width = width - 4 - name_width - 2  # "│ " + names + "  " + text + " │"
    title = "─ Commands "
    lines = [paint(_BOLD, "Usage: ") + paint(_BOLD, "llama COMMAND"), ""]
    for paragraph in description.split("\n\n"):
        lines += [paragraph, ""]
    lines.append("╭" + title + "─" * (width - 2 - len(title)) + "╮")
    for name, text in rows:
        for i, piece in enumerate(textwrap.wrap(text, text_width, break_on_hyphens=False) or [""]):
            if i == 0:
                cell = paint(_CYAN, name.ljust(name_width)) + paint(_CYAN, "  ")
            else:
                cell = paint(_CYAN, " " * (name_width + 2))
            lines.append("│ " + cell + piece.ljust(text_width) + " │")
    lines.append("╰" + "─" * (width - 2) + "╯")
    return "\n".join(lines) + "\n"


def print_root_help(description: str, commands: Sequence[tuple[str, str]]) -> None:
    """Print the root help on stdout as cyclopts would: the terminal's width and colours, else 160 plain columns."""
    from llama_cli.output import PIPE_WIDTH

    tty = sys.stdout.isatty()
    width = shutil.get_terminal_size().columns if tty else int(os.environ.get("COLUMNS") or PIPE_WIDTH)
    color = tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    sys.stdout.write(render(description, commands, width, color))
