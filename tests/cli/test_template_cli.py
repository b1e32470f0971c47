"""`llama model template`: the table of templates, one rendered with marks and colours, and --raw."""

from __future__ import annotations

import sys

import pytest

from llama_cli import output
from llama_cli.app import main


@pytest.fixture
def llama(capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)

    def run(*argv: str) -> tuple[int, str, str]:
        rc = main(["model", "template", *argv])
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def test_template_table_pinned(llama):
    rc, out, err = llama()
    assert (rc, err) == (0, "")
    assert out == """\
+-----------+---------------------------------+
| Role      | Template Name                   |
+-----------+---------------------------------+
| user      | user-default                    |
| assistant | assistant-builtin-tool-call     |
| assistant | assistant-custom-tool-call      |
| assistant | assistant-default               |
| system    | system-builtin-and-custom-tools |
| system    | system-builtin-tools-only       |
| system    | system-custom-tools-only        |
| system    | system-default                  |
| tool      | tool-success                    |
| tool      | tool-failure                    |
+-----------+---------------------------------+
"""


def _column(out: str, row: str) -> list[str]:
    """The second-column lines of table row `row` (continuation lines included)."""
    lines, inside = [], False
    for line in out.splitlines():
        if line.startswith("+"):
            inside = False
            continue
        first, second = (cell.strip() for cell in line.strip("|").split("|", 1))
        if first == row:
            inside = True
        elif first:
            inside = False
        if inside:
            lines.append(second.rstrip(" |"))
    return lines


def test_tool_success_shows_ipython_header_and_stdout(llama):
    rc, out, err = llama("--name", "tool-success")
    assert (rc, err) == (0, "")
    assert _column(out, "Name") == ["tool-success"]
    assert _column(out, "Template") == [
        "<|begin_of_text|><|start_header_id|>ipython<|end_header_id|>↵",
        "↵",
        "completed↵",
        '[stdout]{"results":["something something"]}[/stdout]<|eot_id|><|start_header_id|>assistant<|end_header_id|>↵',
        "↵",
        "",
    ]
    assert _column(out, "Notes") == ["↵ represents newline", "Note ipython header and [stdout]"]


def test_raw_keeps_newlines_and_drops_the_mark_note(llama):
    rc, out, _ = llama("--name", "tool-failure", "--raw")
    assert rc == 0 and "↵" not in out
    template = _column(out, "Template")
    assert template[:3] == ["<|begin_of_text|><|start_header_id|>ipython<|end_header_id|>", "", "failed"]
    assert template[3].startswith("[stderr]brave_search encounter an error")
    assert _column(out, "Notes") == ["Note ipython header and [stderr]"]


@pytest.mark.parametrize(
    ("fmt", "call"),
    [
        ("json", '<|python_tag|>{"type": "function", "name": "trending_songs", "parameters": {"country": "US", "n": 10}}<|eot_id|>'),
        ("function_tag", '<|python_tag|><function=trending_songs>{"country": "US", "n": 10}</function><|eot_id|>'),
    ],
)
def test_format_option_changes_custom_tool_call(llama, monkeypatch, fmt, call):
    monkeypatch.setenv("COLUMNS", "300")  # no wrapping inside the call
    rc, out, _ = llama("--name", "assistant-custom-tool-call", "--format", fmt)
    assert rc == 0
    assert call in "".join(_column(out, "Template"))


def test_special_tokens_are_bold_yellow_on_a_terminal(llama, monkeypatch):
    from rich.console import Console

    monkeypatch.setattr(
        output, "console", lambda stderr=False: Console(file=sys.stdout, width=160, force_terminal=True, color_system="standard")
    )
    rc, out, _ = llama("--name", "tool-success")
    assert rc == 0
    bold_yellow = "\x1b[1;33m"
    for token in ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"):
        assert f"{bold_yellow}{token}\x1b[0m" in out
    assert f"{bold_yellow}[stdout]" not in out and "[stdout]" in out


def test_unknown_template_is_one_line_exit_2(llama):
    rc, out, err = llama("--name", "nope")
    assert (rc, out) == (2, "")
    assert err.startswith("Error: No template named 'nope'. Valid names: user-default, ")
    assert err.count("\n") == 1


def test_bad_format_is_a_usage_error(llama):
    rc, _, err = llama("--name", "tool-success", "--format", "xml")
    assert rc == 2 and err.startswith("Error: ") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("notes", "raw", "shown"),
    [
        ("↵ represents newline\nNotice <|python_tag|>", False, "↵ represents newline\nNotice <|python_tag|>"),
        ("↵ represents newline\nNotice <|python_tag|>", True, "Notice <|python_tag|>"),
        ("Note ipython header", False, "↵ represents newline\nNote ipython header"),
        ("↵ represents newline", True, ""),
        ("", False, "↵ represents newline"),
    ],
)
def test_template_notes(notes, raw, shown):
    assert output.template_notes(notes, raw) == shown
