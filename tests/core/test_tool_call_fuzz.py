"""The tool-call parser under generated model outputs, whole and half-written (issue #16).

Invariants:
- parsing never raises, whatever the text, with or without <|python_tag|>;
- it never returns a call to a tool the request did not offer;
- a complete, well-formed call list (hyphenated and dotted names too) parses back exactly, in every
  custom format (round trip with encode_tool_calls);
- a half-written one parses as nothing, or as the calls already complete in it (never an invented
  or altered call, never code_interpreter);
- every prefix of a call's text may still open a call, so a stream holds it back and never sends
  any of it as content.
"""

from __future__ import annotations

import keyword
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llama_core.prompt.tool_calls import encode_tool_calls, may_open_call, parse_tool_calls
from llama_core.types import ToolCall, ToolPromptFormat, builtin_tool

FORMATS = (ToolPromptFormat.json, ToolPromptFormat.function_tag, ToolPromptFormat.python_list)
FRAGMENTS = (
    "[", "]", "(", ")", "{", "}", '"', "'", ",", "=", ":", " ", "\n", "\\", "<function=", "</function>", "<|python_tag|>",
    "get_weather", "get-weather", "a.b", "f", '"name"', '"parameters"', '"arguments"', '"type": "function"', '"{', '}"',
    'brave_search.call(query="', "code_interpreter", "True", "None", "1", "-2.5e3", "city", '"Paris"', "**k", "x",
)  # fmt: skip

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,15}", fullmatch=True).filter(lambda n: builtin_tool(n) is None)
keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True).filter(lambda k: not keyword.iskeyword(k))
scalars = st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
calls = st.lists(
    st.builds(lambda name, args: ToolCall(call_id="id", tool_name=name, arguments=args), names, st.dictionaries(keys, values, max_size=4)),
    min_size=1, max_size=3,
)  # fmt: skip
model_texts = st.text(max_size=80) | st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), max_size=24).map("".join)
offered = st.frozensets(st.sampled_from(["get_weather", "get-weather", "a.b", "f", "x", "brave_search", "code_interpreter"]))


def parsed(body: str, tools: frozenset[str] | None, ipython: bool = True) -> list[tuple[str, dict[str, Any]]]:
    return [(c.tool_name, c.arguments) for c in parse_tool_calls(body, ipython=ipython, tools=tools, make_call_id=lambda: "id")]


@SETTINGS
@given(model_texts, st.booleans(), offered)
def test_any_text_parses_without_raising_and_calls_only_offered_tools(text: str, ipython: bool, tools: frozenset[str]) -> None:
    for body in (text, text.strip()):
        assert all(name in tools for name, _ in parsed(body, tools, ipython))
        parse_tool_calls(body, ipython=ipython)  # any name accepted: still never raises


@SETTINGS
@given(calls, st.sampled_from(FORMATS))
def test_a_whole_call_list_round_trips(tool_calls: list[ToolCall], fmt: ToolPromptFormat) -> None:
    text = "".join(encode_tool_calls(tool_calls, fmt))
    tools = frozenset(c.tool_name for c in tool_calls)
    for ipython in (False, True):
        assert parse_tool_calls(text, ipython=ipython, tools=tools, make_call_id=lambda: "id") == tool_calls


@SETTINGS
@given(calls, st.sampled_from(FORMATS), st.data())
def test_a_half_written_call_list_is_nothing_or_its_complete_calls(tool_calls: list[ToolCall], fmt: ToolPromptFormat, data: st.DataObject) -> None:
    text = "".join(encode_tool_calls(tool_calls, fmt))
    cut = data.draw(st.integers(0, len(text) - 1), label="cut")
    tools = frozenset(c.tool_name for c in tool_calls) | {"code_interpreter"}
    whole = [(c.tool_name, c.arguments) for c in tool_calls]
    got = parsed(text[:cut], tools)
    assert got == whole[: len(got)]


@SETTINGS
@given(calls, st.sampled_from(FORMATS), st.data())
def test_every_prefix_of_a_call_is_held_back(tool_calls: list[ToolCall], fmt: ToolPromptFormat, data: st.DataObject) -> None:
    text = "".join(encode_tool_calls(tool_calls, fmt))
    cut = data.draw(st.integers(0, len(text)), label="cut")
    assert may_open_call(text[:cut], frozenset(c.tool_name for c in tool_calls))
