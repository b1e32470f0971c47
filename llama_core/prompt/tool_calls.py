"""Tool calls as Llama 3 writes them: encode a ToolCall to text, and parse the model's text back.

The forms (spec models-prompts-tokenizer §4.2-§5), each after an optional `<|python_tag|>`:

    builtin           brave_search.call(query="...")     (also wolfram_alpha, photogen)
    code_interpreter  raw python source
    json              {"type": "function", "name": "f", "parameters": {...}}   (or {"name": ..., "parameters": ...})
    function_tag      <function=f>{"a": 1}</function>
    python_list       [f(a=1), g(b="x")]

Parsing tries custom forms first (function_tag, json, python_list), then builtin calls, then, if the
body followed `<|python_tag|>`, code_interpreter; as llama-models 0.0.63 does. Deliberate differences
from it: every call of a python_list, function_tag run or JSON sequence is returned (it keeps the
first); several python_list calls encode as one list (it writes `[f()][g()]`); python_list strings are
escaped and dicts written as `{"k": v}` so they parse back (it writes `"{v}"` and `{k=v}`);
python_list names may have hyphens and dots (`[get-weather(city="Paris")]`); JSON arguments written
as a JSON string are decoded; `name.call(query=...)` counts without `<|python_tag|>` only as the whole
body (inside prose it stays prose), and of a non-builtin name only after the tag; function tags count
only when the body opens with one; a body that opens like a custom call is never code_interpreter
code; a call to a tool the request did not offer makes the whole body text; malformed input is plain
text, never an exception.
"""

from __future__ import annotations

import ast
import json
import re
import uuid
from collections.abc import Callable, Collection, Sequence
from typing import Any

from llama_core.types import BuiltinTool, ToolCall, ToolDefinition, ToolPromptFormat, builtin_tool

# Builtins the model calls as `name.call(query="...")`; code_interpreter is raw code instead.
QUERY_TOOLS = (BuiltinTool.brave_search, BuiltinTool.wolfram_alpha, BuiltinTool.photogen)

BUILTIN_CALL = re.compile(r'\b(?P<tool_name>\w+)\.call\(query="(?P<query>[^"]*)"\)')
FUNCTION_TAG = re.compile(r"<function=(?P<name>[^>{}]+)>")


def new_call_id() -> str:
    """A fresh call id: a uuid4 string, as the reference assigns."""
    return str(uuid.uuid4())


# ---- encoding -------------------------------------------------------------------------------------


def encode_tool_call(call: ToolCall, tool_prompt_format: ToolPromptFormat) -> str:
    """The text the model would have written for `call` (without `<|python_tag|>`)."""
    if call.tool_name in QUERY_TOOLS:
        return f'{call.tool_name}.call(query="{call.arguments["query"]}")'
    if call.tool_name == BuiltinTool.code_interpreter:
        return str(call.arguments["code"])
    if tool_prompt_format == ToolPromptFormat.json:
        return json.dumps({"type": "function", "name": call.tool_name, "parameters": call.arguments})
    if tool_prompt_format == ToolPromptFormat.function_tag:
        return f"<function={call.tool_name}>{json.dumps(call.arguments)}</function>"
    return f"[{_python_call(call)}]"


def encode_tool_calls(calls: Sequence[ToolCall], tool_prompt_format: ToolPromptFormat) -> list[str]:
    """One text piece per call, except that python_list custom calls share one `[f(..), g(..)]` piece.

    Each piece is tokenized on its own, as the reference does.
    """
    pieces: list[str] = []
    group: list[str] = []  # pending python_list calls
    for call in calls:
        if tool_prompt_format == ToolPromptFormat.python_list and builtin_tool(call.tool_name) is None:
            group.append(_python_call(call))
            continue
        if group:
            pieces.append(f"[{', '.join(group)}]")
            group = []
        pieces.append(encode_tool_call(call, tool_prompt_format))
    if group:
        pieces.append(f"[{', '.join(group)}]")
    return pieces


def _python_call(call: ToolCall) -> str:
    args = ", ".join(f"{k}={_python_value(v)}" for k, v in call.arguments.items())
    return f"{call.tool_name}({args})"


def _python_value(value: Any) -> str:
    # Double-quoted strings as the reference writes them; json escaping keeps them valid Python.
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return f"[{', '.join(_python_value(v) for v in value)}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_python_value(str(k))}: {_python_value(v)}" for k, v in value.items()) + "}"
    return str(value)  # int, float, bool, None


# ---- parsing --------------------------------------------------------------------------------------

# How a custom call opens, after optional whitespace: a JSON object or list, a python_list entry
# (`[name(`, the name hyphenated or dotted too), or a function tag; or the start of one cut short
# (`[get-wea`, `<func`). A body that opens so after <|python_tag|> is a failed call, never code.
CALL_OPENING = re.compile(r"\s*(\{|\[\s*(\{|[A-Za-z_][\w.-]*\s*\(|[A-Za-z_]?[\w.-]*\s*$)|<function=)")
# The openings a stream holds text back for, while the text may still become one (ChatStream).
HELD_OPENINGS = ("{", "[", "<function=", "<|python_tag|>")
# A python_list entry's name: hyphens and dots are no Python, but tool names have them.
LIST_CALL_NAME = re.compile(r"\s*([A-Za-z_][\w.-]*)(?=\s*\()")
# What a hostile or truncated body can make the parsers raise: the reply is then text.
PARSE_ERRORS = (SyntaxError, ValueError, TypeError, RecursionError, MemoryError)


def offered(tools: Sequence[ToolDefinition]) -> frozenset[str]:
    """The names of a request's tools, builtins included: the only tools a reply may call."""
    return frozenset(str(t.tool_name) for t in tools)


def may_open_call(text: str, tools: Collection[str]) -> bool:
    """Whether `text`, the start of a reply, may still become a call to one of `tools`.

    True while the text (leading whitespace aside) is empty, a prefix of an opening, or starts with
    one: `{`, `[`, `<function=`, `<|python_tag|>`, or `name.call(` of an offered builtin.
    """
    if not tools:
        return False
    head = text.lstrip()
    openings = [*HELD_OPENINGS, *(f"{t.value}.call(" for t in QUERY_TOOLS if t.value in tools)]
    return any(head.startswith(o) or o.startswith(head) for o in openings)


def parse_tool_calls(
    body: str,
    *,
    ipython: bool = False,
    tools: Collection[str] | None = None,
    make_call_id: Callable[[], str] = new_call_id,
) -> list[ToolCall]:
    """Every tool call in `body` (the assistant's text, stop token and `<|python_tag|>` removed).

    `ipython` says the text followed `<|python_tag|>`: then unrecognized text is code_interpreter
    code, unless it opens like a custom call (a half-written one is text). `tools` names the tools
    the request offered, builtins included: a call to any other makes the whole body text. None
    takes any name (rendering and format tests). Returns [] for plain text; never raises.
    """
    found = _parse_custom(body.strip()) or _parse_builtin(body, ipython)
    if not found and ipython and body.strip() and not _opens_custom_call(body):
        found = [(BuiltinTool.code_interpreter.value, {"code": body})]
    if tools is not None and any(name not in tools for name, _ in found):
        return []
    return [ToolCall(call_id=make_call_id(), tool_name=name, arguments=args) for name, args in found]


Found = list[tuple[str, dict[str, Any]]]


def _opens_custom_call(body: str) -> bool:
    head = body.lstrip()
    return bool(CALL_OPENING.match(head)) or "<function=".startswith(head)


def _parse_custom(body: str) -> Found:
    calls = _parse_function_tags(body) or _parse_json_calls(body) or _parse_python_list(body)
    return [_as_builtin(name, args) for name, args in calls]


def _as_builtin(name: str, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # A model offered custom tools sometimes calls a builtin in the custom format: map it back.
    tool = builtin_tool(name)
    if tool is None or not args:
        return name, args
    key = "code" if tool == BuiltinTool.code_interpreter else "query"
    return tool.value, args if list(args) == [key] else {key: next(iter(args.values()))}


def _arguments(value: Any) -> dict[str, Any] | None:
    """A call's arguments: an object, or an object written as a JSON string (some models quote it)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except PARSE_ERRORS:
            return None
    return value if isinstance(value, dict) else None


def _parse_function_tags(body: str) -> Found:
    # Only a body that opens with a tag: a tag inside prose stays prose (a stream sent the prose).
    if not body.startswith("<function="):
        return []
    decoder = json.JSONDecoder()
    calls: Found = []
    for match in FUNCTION_TAG.finditer(body):
        raw = body[match.end() :]
        for text in (raw, raw.replace("'", '"')):  # the reference also accepts single-quoted args
            try:
                args, _ = decoder.raw_decode(text)
            except PARSE_ERRORS:
                continue
            if isinstance(args, dict):
                calls.append((match["name"].strip(), args))
            break
    return calls


def _parse_json_calls(body: str) -> Found:
    # One object, a list of objects, or objects one after another (what several json calls encode to).
    decoder = json.JSONDecoder()
    values: list[Any] = []
    pos = 0
    try:
        while pos < len(body):
            value, pos = decoder.raw_decode(body, pos)
            values.extend(value if isinstance(value, list) else [value])
            while pos < len(body) and body[pos] in " \t\r\n;,":
                pos += 1
    except PARSE_ERRORS:
        return []
    calls: Found = []
    for value in values:
        # {"name": ...} alone is ordinary JSON output (a user asked for JSON), not a call.
        if not (isinstance(value, dict) and isinstance(value.get("name"), str)):
            return []
        if value.get("type") != "function" and "parameters" not in value and "arguments" not in value:
            return []
        args = _arguments(value.get("parameters", value.get("arguments", {})))
        if args is None:
            return []
        calls.append((value["name"], args))
    return calls


def _parse_python_list(body: str) -> Found:
    named = _name_list_calls(body)
    if named is None:
        return []
    text, names = named
    try:
        tree = ast.parse(text, mode="eval")
    except PARSE_ERRORS:
        return []
    if not isinstance(tree.body, ast.List) or not tree.body.elts:
        return []
    calls: Found = []
    for node in tree.body.elts:
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.args):
            return []
        index = node.func.id.removeprefix("_tool_")
        if not (node.func.id.startswith("_tool_") and index.isdigit() and int(index) < len(names)):
            return []
        try:
            args = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg is not None}
        except PARSE_ERRORS:  # a value that is not a literal: not a call we can run
            return []
        if len(args) != len(node.keywords):  # **kwargs
            return []
        calls.append((names[int(index)], args))
    return calls


def _name_list_calls(body: str) -> tuple[str, list[str]] | None:
    """`body` with the name of each call at the list's top level replaced by `_tool_<i>`, so that
    `get-weather` and `weather.get` parse as Python; and the names. None unless `body` opens a list.

    Strings are skipped whole, so a name-like text inside an argument is never touched.
    """
    if not body.startswith("["):
        return None
    out: list[str] = []
    names: list[str] = []
    depth, i = 0, 0
    while i < len(body):
        char = body[i]
        if char in "\"'":
            end = _string_end(body, i)
            out.append(body[i:end])
            i = end
            continue
        depth += (char in "([{") - (char in ")]}")
        out.append(char)
        i += 1
        if depth == 1 and char in "[," and (match := LIST_CALL_NAME.match(body, i)):
            out.append(body[i : match.start(1)] + f"_tool_{len(names)}")
            names.append(match[1])
            i = match.end(1)
    return "".join(out), names


def _string_end(text: str, start: int) -> int:
    """The index just past the string literal opening at `start` (its end of text if unclosed)."""
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == quote:
            return i + 1
        else:
            i += 1
    return len(text)


def _parse_builtin(body: str, ipython: bool) -> Found:
    # After <|python_tag|> a call is found anywhere (as the reference); without it, only a body that
    # is one call, so a call inside prose stays prose (a stream has sent the prose as content).
    if not ipython:
        match = BUILTIN_CALL.fullmatch(body.strip())
        return [(match["tool_name"], {"query": match["query"]})] if match and match["tool_name"] in QUERY_TOOLS else []
    return [(m["tool_name"], {"query": m["query"]}) for m in BUILTIN_CALL.finditer(body)]
