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
`name.call(query=...)` of a non-builtin name is a call only after `<|python_tag|>`; malformed input
is plain text, never an exception.
"""

from __future__ import annotations

import ast
import json
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from llama_core.types import BuiltinTool, ToolCall, ToolPromptFormat, builtin_tool

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


def parse_tool_calls(
    body: str, *, ipython: bool = False, make_call_id: Callable[[], str] = new_call_id
) -> list[ToolCall]:
    """Every tool call in `body` (the assistant's text, stop token and `<|python_tag|>` removed).

    `ipython` says the text followed `<|python_tag|>`: then unrecognized text is code_interpreter code.
    Returns [] for plain text.
    """
    found = _parse_custom(body.strip()) or _parse_builtin(body, ipython)
    if not found and ipython:
        found = [(BuiltinTool.code_interpreter.value, {"code": body})]
    return [ToolCall(call_id=make_call_id(), tool_name=name, arguments=args) for name, args in found]


Found = list[tuple[str, dict[str, Any]]]


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


def _parse_function_tags(body: str) -> Found:
    decoder = json.JSONDecoder()
    calls: Found = []
    for match in FUNCTION_TAG.finditer(body):
        raw = body[match.end() :]
        for text in (raw, raw.replace("'", '"')):  # the reference also accepts single-quoted args
            try:
                args, _ = decoder.raw_decode(text)
            except json.JSONDecodeError:
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
    except json.JSONDecodeError:
        return []
    calls: Found = []
    for value in values:
        # {"name": ...} alone is ordinary JSON output (a user asked for JSON), not a call.
        if not (isinstance(value, dict) and isinstance(value.get("name"), str)):
            return []
        if value.get("type") != "function" and "parameters" not in value and "arguments" not in value:
            return []
        args = value.get("parameters", value.get("arguments", {}))
        if not isinstance(args, dict):
            return []
        calls.append((value["name"], args))
    return calls


def _parse_python_list(body: str) -> Found:
    try:
        tree = ast.parse(body, mode="eval")
    except SyntaxError:
        return []
    if not isinstance(tree.body, ast.List) or not tree.body.elts:
        return []
    calls: Found = []
    for node in tree.body.elts:
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.args):
            return []
        try:
            args = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg is not None}
        except ValueError:  # a value that is not a literal: not a call we can run
            return []
        if len(args) != len(node.keywords):  # **kwargs
            return []
        calls.append((node.func.id, args))
    return calls


def _parse_builtin(body: str, ipython: bool) -> Found:
    calls: Found = []
    for match in BUILTIN_CALL.finditer(body):
        name = match["tool_name"]
        if ipython or name in QUERY_TOOLS:
            calls.append((name, {"query": match["query"]}))
    return calls
