"""`llama model template` data: names, order, notes, and exact renders against llama-models 0.0.63."""

from __future__ import annotations

import textwrap
from datetime import date

import pytest

from llama_core.errors import NotFoundError
from llama_core.prompt.chat_format import Special
from llama_core.prompt.templates import TEMPLATES, render_template, template_segments
from llama_core.types import ToolPromptFormat

TODAY = date(2024, 12, 6)


def test_names_roles_and_order():
    assert [(t.name, t.role) for t in TEMPLATES] == [
        ("user-default", "user"),
        ("assistant-builtin-tool-call", "assistant"),
        ("assistant-custom-tool-call", "assistant"),
        ("assistant-default", "assistant"),
        ("system-builtin-and-custom-tools", "system"),
        ("system-builtin-tools-only", "system"),
        ("system-custom-tools-only", "system"),
        ("system-default", "system"),
        ("tool-success", "tool"),
        ("tool-failure", "tool"),
    ]


def test_notes():
    notes = {t.name: t.notes for t in TEMPLATES}
    assert notes["user-default"] == "↵ represents newline"
    assert notes["tool-success"] == "↵ represents newline\nNote ipython header and [stdout]"
    assert notes["assistant-builtin-tool-call"] == "↵ represents newline\nNotice <|python_tag|>"


def test_tool_success_exact():
    assert render_template("tool-success") == (
        "<|begin_of_text|><|start_header_id|>ipython<|end_header_id|>\n\n"
        'completed\n[stdout]{"results":["something something"]}[/stdout]<|eot_id|>'
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_system_builtin_tools_only_exact():
    expected = textwrap.dedent(
        """\
        <|begin_of_text|><|start_header_id|>system<|end_header_id|>

        Environment: ipython
        Tools: brave_search, wolfram_alpha
        Cutting Knowledge Date: December 2023
        Today Date: 06 December 2024

        You are a helpful assistant.
        <|eot_id|><|start_header_id|>assistant<|end_header_id|>

        """
    )
    assert render_template("system-builtin-tools-only", today=TODAY) == expected


def test_custom_tool_call_function_tag():
    assert render_template("assistant-custom-tool-call", ToolPromptFormat.function_tag) == (
        "<|begin_of_text|><|start_header_id|>assistant<|end_header_id|>\n\n"
        '<|python_tag|><function=trending_songs>{"country": "US", "n": 10}</function><|eot_id|>'
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_python_list_custom_tools_go_into_the_system_message():
    text = render_template("system-custom-tools-only", ToolPromptFormat.python_list, TODAY)
    assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are an expert")
    assert text.endswith(
        "    }\n]\nYou are a helpful assistant.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert "Today Date" not in text


def test_segments_set_special_tokens_apart():
    assert template_segments("tool-failure")[:6] == [
        Special("<|begin_of_text|>"),
        Special("<|start_header_id|>"),
        "ipython",
        Special("<|end_header_id|>"),
        "\n\n",
        "failed\n[stderr]brave_search encounter an error: could not communicate with api.brave.com[/stderr]",
    ]


def test_unknown_name_lists_valid_names():
    with pytest.raises(NotFoundError, match="No template named 'nope'. Valid names: user-default, "):
        render_template("nope")


def _reference_render(name: str, fmt: ToolPromptFormat) -> str:
    from llama_models.llama3.api.datatypes import ToolPromptFormat as RefFormat
    from llama_models.llama3.api.interface import render_jinja_template

    _, tokens = render_jinja_template(name, RefFormat(fmt.value))
    return "".join(text for text, _ in tokens)


# llama-models raises for custom tools in python_list (we render the Llama 3.2 form instead).
CASES = [
    (t.name, fmt)
    for t in TEMPLATES
    for fmt in ToolPromptFormat
    if not ("custom-tools" in t.name and fmt == ToolPromptFormat.python_list)
]


@pytest.mark.parametrize(("name", "fmt"), CASES, ids=[f"{n}-{f.value}" for n, f in CASES])
def test_matches_llama_models(name: str, fmt: ToolPromptFormat):
    # The reference dates its system prompts with today's date; so do we by default.
    assert render_template(name, fmt) == _reference_render(name, fmt)
