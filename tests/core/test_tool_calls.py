"""Tool calls: the text each format writes, and parsing the model's text back (call ids injected)."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest

from llama_core.prompt.tool_calls import encode_tool_call, encode_tool_calls, may_open_call, parse_tool_calls
from llama_core.types import BuiltinTool, ToolCall, ToolPromptFormat

J, FT, PL = ToolPromptFormat.json, ToolPromptFormat.function_tag, ToolPromptFormat.python_list


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(call_id="id", tool_name=name, arguments=arguments)


def parsed(body: str, ipython: bool = False) -> list[tuple[str, dict[str, Any]]]:
    return [(c.tool_name, c.arguments) for c in parse_tool_calls(body, ipython=ipython)]


ENCODE_CASES = [
    ("brave", call("brave_search", query="Who won NBA in 2024?"), J, 'brave_search.call(query="Who won NBA in 2024?")'),
    ("wolfram", call("wolfram_alpha", query="2+2"), FT, 'wolfram_alpha.call(query="2+2")'),
    ("photogen", call("photogen", query="a llama"), PL, 'photogen.call(query="a llama")'),
    ("code", call("code_interpreter", code="import math\nprint(math.pi)"), J, "import math\nprint(math.pi)"),
    ("json", call("trending_songs", country="US", n=10), J,
     '{"type": "function", "name": "trending_songs", "parameters": {"country": "US", "n": 10}}'),
    ("function_tag", call("trending_songs", country="US", n=10), FT,
     '<function=trending_songs>{"country": "US", "n": 10}</function>'),
    ("python_list", call("trending_songs", country="US", n=10), PL, '[trending_songs(country="US", n=10)]'),
    ("python_list-types", call("f", a=1.5, b=True, c=None, d=[1, "x"]), PL, '[f(a=1.5, b=True, c=None, d=[1, "x"])]'),
    # Divergences from llama-models, so the text parses back: escaped strings, dicts as Python dicts.
    ("python_list-escaped", call("f", s='say "hi"\n'), PL, '[f(s="say \\"hi\\"\\n")]'),
    ("python_list-dict", call("f", d={"k": 1}), PL, '[f(d={"k": 1})]'),
    ("python_list-no-args", call("f"), PL, "[f()]"),
]


@pytest.mark.parametrize(("tool_call", "fmt", "text"), [c[1:] for c in ENCODE_CASES], ids=[c[0] for c in ENCODE_CASES])
def test_encode_tool_call(tool_call: ToolCall, fmt: ToolPromptFormat, text: str):
    assert encode_tool_call(tool_call, fmt) == text


def test_several_python_list_calls_share_one_list():
    calls = [call("get_weather", city="SF"), call("get_weather", city="Seattle"), call("brave_search", query="q")]
    assert encode_tool_calls(calls, PL) == [
        '[get_weather(city="SF"), get_weather(city="Seattle")]',
        'brave_search.call(query="q")',
    ]
    assert encode_tool_calls(calls[:2], J) == [
        '{"type": "function", "name": "get_weather", "parameters": {"city": "SF"}}',
        '{"type": "function", "name": "get_weather", "parameters": {"city": "Seattle"}}',
    ]


PARSE_CASES = [
    ("builtin", 'brave_search.call(query="x")', False, [("brave_search", {"query": "x"})]),
    ("builtin-wolfram", 'wolfram_alpha.call(query="solve x^2=4")', True, [("wolfram_alpha", {"query": "solve x^2=4"})]),
    # Without <|python_tag|> a call inside prose is prose: a stream has sent the prose as content.
    ("builtin-in-prose", 'I will run photogen.call(query="a cat") now', False, []),
    ("builtin-in-prose-after-tag", 'I will run photogen.call(query="a cat") now', True, [("photogen", {"query": "a cat"})]),
    ("unknown-name-without-python-tag", 'my_tool.call(query="x")', False, []),
    ("unknown-name-after-python-tag", 'my_tool.call(query="x")', True, [("my_tool", {"query": "x"})]),
    ("code", "print(1)", True, [("code_interpreter", {"code": "print(1)"})]),
    ("code-not-without-tag", "print(1)", False, []),
    ("function_tag", '<function=f>{"n": 10}</function>', False, [("f", {"n": 10})]),
    ("function_tag-single-quotes", "<function=f>{'n': 'ten'}</function>", False, [("f", {"n": "ten"})]),
    ("function_tag-nested", '<function=f>{"a": {"b": [1]}}</function>', False, [("f", {"a": {"b": [1]}})]),
    ("function_tag-no-closing", '<function=f>{"n": 1}', False, [("f", {"n": 1})]),
    ("function_tag-several", '<function=a>{"x": 1}</function><function=b>{}</function>', False,
     [("a", {"x": 1}), ("b", {})]),
    ("function_tag-in-prose", 'Sure: <function=f>{"n": 1}</function>', False, []),
    ("json", '{"type": "function", "name": "f", "parameters": {"a": 1}}', True, [("f", {"a": 1})]),
    ("json-name-only-form", '{"name": "f", "parameters": {"a": "b"}}', False, [("f", {"a": "b"})]),
    ("json-arguments-key", '{"name": "f", "arguments": {"a": 2}}', False, [("f", {"a": 2})]),
    ("json-several",
     '{"type": "function", "name": "f", "parameters": {}}{"type": "function", "name": "g", "parameters": {"x": null}}',
     True, [("f", {}), ("g", {"x": None})]),
    ("json-list", '[{"name": "f", "parameters": {}}, {"name": "g", "parameters": {}}]', False, [("f", {}), ("g", {})]),
    ("json-plain-object-is-text", '{"name": "Bob", "age": 3}', False, []),
    # Arguments written as a JSON string (issue #16).
    ("json-string-parameters", '{"name": "get_weather", "parameters": "{\\"city\\": \\"Paris\\"}"}', False,
     [("get_weather", {"city": "Paris"})]),
    ("json-string-arguments", '{"name": "f", "arguments": "{}"}', False, [("f", {})]),
    ("json-string-not-an-object", '{"name": "f", "parameters": "[1]"}', False, []),
    ("json-string-not-json", '{"name": "f", "parameters": "city=Paris"}', False, []),
    ("json-then-prose", '{"name": "f", "parameters": {}} Done.', False, []),
    ("python_list", "[get_weather(city='San Francisco', metric='celsius')]", False,
     [("get_weather", {"city": "San Francisco", "metric": "celsius"})]),
    # The reference keeps only the first call; we keep every one.
    ("python_list-several", "[g(a=1), g(a=2), h(b=[1, 2], c={'k': None})]", False,
     [("g", {"a": 1}), ("g", {"a": 2}), ("h", {"b": [1, 2], "c": {"k": None}})]),
    ("python_list-newline", "[f(a=1)]\n", False, [("f", {"a": 1})]),
    ("python_list-builtin-name", '[brave_search(query="q")]', False, [("brave_search", {"query": "q"})]),
    ("python_list-builtin-other-key", '[brave_search(q="q")]', False, [("brave_search", {"query": "q"})]),
    ("python_list-code-interpreter", '[code_interpreter(src="1+1")]', False, [("code_interpreter", {"code": "1+1"})]),
    ("python_list-not-literal", "[f(a=x)]", False, []),
    ("python_list-positional", "[f(1)]", False, []),
    # Hyphenated and dotted names are tool names (issue #16), even though they are not Python names.
    ("python_list-hyphen", '[get-weather(city="Paris")]', False, [("get-weather", {"city": "Paris"})]),
    ("python_list-dotted", "[weather.get(city='Paris'), a-b.c_d(x=[1])]", False,
     [("weather.get", {"city": "Paris"}), ("a-b.c_d", {"x": [1]})]),
    ("python_list-name-inside-string", '[f(s="], g-h(x=1), [")]', False, [("f", {"s": "], g-h(x=1), ["})]),
    ("python_list-call-as-value", "[f(a=g(b=1))]", False, []),
    ("python_list-then-prose", "[f(a=1)] and more", False, []),
    ("python_list-empty-after-tag", "[]", True, [("code_interpreter", {"code": "[]"})]),
    # A half-written custom call after <|python_tag|> is not code (issue #16: no invented code_interpreter call).
    ("truncated-json-after-tag", '{"name": "get_weather", "parameters": {"ci', True, []),
    ("truncated-python_list-after-tag", '[get_weather(city="Par', True, []),
    ("truncated-function_tag-after-tag", '<function=get_weather>{"ci', True, []),
    ("blank-after-tag", " \n", True, []),
    ("plain", "The capital of France is Paris.", False, []),
    ("empty", "", False, []),
    ("broken-json", '{"type": "function", "name": ', False, []),
]


@pytest.mark.parametrize(("body", "ipython", "calls"), [c[1:] for c in PARSE_CASES], ids=[c[0] for c in PARSE_CASES])
def test_parse_tool_calls(body: str, ipython: bool, calls: list[tuple[str, dict[str, Any]]]):
    assert parsed(body, ipython) == calls


def test_builtin_names_compare_equal_to_the_enum():
    (c,) = parse_tool_calls('brave_search.call(query="x")')
    assert c.tool_name == BuiltinTool.brave_search


def test_call_ids_are_uuid4_unless_injected():
    first, second = parse_tool_calls("[f(), g()]")
    assert uuid.UUID(first.call_id).version == 4 and first.call_id != second.call_id
    counter = itertools.count()
    ids = [c.call_id for c in parse_tool_calls("[f(), g()]", make_call_id=lambda: f"call-{next(counter)}")]
    assert ids == ["call-0", "call-1"]


ROUND_TRIPS = [
    ("json", J, [call("f", a=1, b="x y", c=[1.5, None], d={"k": True})]),
    ("json-two", J, [call("f", a=1), call("g", b="2")]),
    ("function_tag", FT, [call("f", a=1, b="ünï", d={"k": [False]})]),
    ("function_tag-two", FT, [call("f"), call("g", x=0)]),
    ("python_list", PL, [call("f", a=1, b="x", c=None, d={"k": [1, "2"]}, e='q"uote')]),
    ("python_list-three", PL, [call("f", a=1), call("g", b=2.5), call("f", a=3)]),
    ("brave", J, [call("brave_search", query="Who won?")]),
    ("code", PL, [call("code_interpreter", code="x = [i for i in range(3)]\nprint(x)")]),
]


OFFERED_CASES = [
    # (body, ipython, the request's tools, calls): a call to a tool not offered is text, whole.
    ('{"name": "get_weather", "parameters": {"city": "Paris"}}', False, {"get_weather"}, [("get_weather", {"city": "Paris"})]),
    ('{"name": "get_weather", "parameters": {"city": "Paris"}}', False, set(), []),
    ("[f(a=1), g(b=2)]", False, {"f"}, []),
    ("[f(a=1), g(b=2)]", False, {"f", "g"}, [("f", {"a": 1}), ("g", {"b": 2})]),
    ('brave_search.call(query="x")', True, {"get_weather"}, []),  # a builtin counts only when listed
    ('brave_search.call(query="x")', True, {"brave_search"}, [("brave_search", {"query": "x"})]),
    ('[brave_search(q="x")]', False, {"brave_search"}, [("brave_search", {"query": "x"})]),
    ("print(1)", True, {"get_weather"}, []),  # no code_interpreter unless offered
    ("print(1)", True, {"code_interpreter"}, [("code_interpreter", {"code": "print(1)"})]),
    ('{"name": "get_weather", "parameters": {"ci', True, {"get_weather", "code_interpreter"}, []),
]


@pytest.mark.parametrize(("body", "ipython", "tools", "calls"), OFFERED_CASES)
def test_only_offered_tools_are_called(body: str, ipython: bool, tools: set[str], calls: list[tuple[str, dict[str, Any]]]):
    got = parse_tool_calls(body, ipython=ipython, tools=tools)
    assert [(c.tool_name, c.arguments) for c in got] == calls


@pytest.mark.parametrize(
    ("text", "tools", "held"),
    [
        ("", {"f"}, True), ("  \n", {"f"}, True), ("{", {"f"}, True), ('{"name": "f", "param', {"f"}, True),
        ("[", {"f"}, True), ("[1, 2] are numbers", {"f"}, True), ("<func", {"f"}, True), ("<function=f>", {"f"}, True),
        ("<|python", {"f"}, True), ("brave_se", {"brave_search"}, True), ('brave_search.call(query="x', {"brave_search"}, True),
        ("brave_se", {"f"}, False), ("Hello", {"f"}, False), (" The", {"f"}, False), ("<b>", {"f"}, False),
        ("{", set(), False), ("", set(), False),
    ],
)  # fmt: skip
def test_may_open_call(text: str, tools: set[str], held: bool):
    assert may_open_call(text, tools) is held


@pytest.mark.parametrize(("fmt", "calls"), [c[1:] for c in ROUND_TRIPS], ids=[c[0] for c in ROUND_TRIPS])
def test_encode_then_parse_round_trips(fmt: ToolPromptFormat, calls: list[ToolCall]):
    text = "".join(encode_tool_calls(calls, fmt))
    assert parse_tool_calls(text, ipython=True, make_call_id=lambda: "id") == calls
