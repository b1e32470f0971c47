"""`llama` / `llama --help` skip cyclopts and rich; what they print must stay cyclopts' own help, byte for byte."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from llama_cli.app import COMMANDS, HELP, build_app
from llama_cli.root_help import render


@pytest.mark.parametrize("color", [False, True], ids=["plain", "terminal"])
@pytest.mark.parametrize("width", [160, 120, 100, 80, 70, 60])
def test_the_fast_root_help_is_the_cyclopts_help(width: int, color: bool) -> None:
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=color, color_system="standard" if color else None,
                      highlight=False, emoji=False)  # fmt: skip
    build_app()(["--help"], console=console)
    assert render(HELP, [(name, text) for name, _, text in COMMANDS], width, color) == out.getvalue()


@pytest.mark.parametrize("argv", [[], ["--help"], ["-h"]], ids=["no-args", "--help", "-h"])
def test_root_help_imports_neither_cyclopts_nor_rich(argv: list[str]) -> None:
    code = (
        "import sys; from llama_cli.app import main; rc = main(sys.argv[1:]); "
        "print(sorted(m for m in ('cyclopts', 'rich') if m in sys.modules), file=sys.stderr); sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "[]\n")
    assert done.stdout.startswith("Usage: llama COMMAND\n\nWelcome to the Llama CLI.\n")


def test_version_without_cyclopts_and_through_cyclopts() -> None:
    from importlib.metadata import version

    code = (
        "import sys; from llama_cli.app import main; rc = main(['--version']); "
        "print(sorted(m for m in ('cyclopts', 'rich') if m in sys.modules), file=sys.stderr); sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"llama-toolchain {version('llama-toolchain')}\n", "[]\n")
    out = io.StringIO()
    from rich.console import Console

    build_app()(["--version"], console=Console(file=out, highlight=False))
    assert out.getvalue() == f"llama-toolchain {version('llama-toolchain')}\n"
