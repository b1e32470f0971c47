"""The root `llama` app and `main()`, the console script.

Sub-apps are registered lazily by import path, so `llama --help` imports none of them. To add a
command group (`download`, `stack`), write `llama_cli/<name>.py` with an `app = App(name=...)` and
add one row to COMMANDS.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from llama_cli.errors import EXIT_BROKEN_PIPE, EXIT_USAGE, report

if TYPE_CHECKING:
    from cyclopts import App

# (name, import path of its App, one-line help): the order is the order `llama --help` lists them.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("download", "llama_cli.download:download", "Download a model from Meta or Hugging Face (or the demo model)."),
    ("model", "llama_cli.model:app", "Work with llama models: list, describe, download, run, remove, template, verify-download."),
    ("stack", "llama_cli.stack:app", "Operations for the Llama Stack / Distributions: list, build, configure, run."),
)

DEBUG_FLAG = "--debug"

HELP = "Welcome to the Llama CLI.\n\nAdd --debug (or set LLAMA_DEBUG=1) to see tracebacks."
ROOT_HELP_ARGV: tuple[tuple[str, ...], ...] = ((), ("--help",), ("-h",))
VERSION_ARGV = ("--version",)


def version() -> str:
    """"llama-toolchain X.Y.Z", from the installed package's metadata."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return f"llama-toolchain {installed('llama-toolchain')}"
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "llama-toolchain (not installed)"


@functools.cache
def build_app() -> App:
    """The root App with every sub-app registered by import path (built once, on first use)."""
    from cyclopts import App

    app = App(
        name="llama",
        help=HELP,
        version=version,
        version_flags=list(VERSION_ARGV),
        result_action="return_value",
        help_format="plaintext",  # the markdown renderer costs ~0.1 s of imports at every --help
    )
    for name, path, text in COMMANDS:
        app.command(path, name=name, help=text)
    return app


def _error_line(error: Exception) -> object:
    # cyclopts' own parse errors (unknown option, missing value) as one plain line.
    from rich.text import Text

    return Text(f"Error: {' '.join(str(error).split())}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run `llama` on `argv` (default: sys.argv[1:]); return the exit status.

    A LlamaError becomes one line on stderr and a non-zero status; the traceback is shown only
    with `--debug` anywhere on the line or LLAMA_DEBUG=1.
    """
    tokens = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in tokens or os.environ.get("LLAMA_DEBUG", "") not in ("", "0")
    tokens = [t for t in tokens if t != DEBUG_FLAG]
    if tuple(tokens) in ROOT_HELP_ARGV:  # the first thing a user types: no cyclopts, no rich
        from llama_cli.root_help import print_root_help

        print_root_help(HELP, [(name, text) for name, _path, text in COMMANDS])
        return 0
    if tuple(tokens) == VERSION_ARGV:  # as fast as the help: no cyclopts
        print(version())
        return 0
    from cyclopts import CycloptsError

    try:
        from llama_cli.output import console

        result = build_app()(
            tokens,
            console=console(),
            error_console=console(stderr=True),
            exit_on_error=False,
            error_formatter=_error_line,
        )
    except CycloptsError:
        return EXIT_USAGE  # already printed by cyclopts, through _error_line
    except BrokenPipeError:  # `llama ... | head`: the reader has what it wanted; stop quietly, as `cat` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nor a second error at exit's flush
        return EXIT_BROKEN_PIPE
    except (Exception, KeyboardInterrupt) as error:
        return report(error, debug)
    return result if isinstance(result, int) else 0
