"""Grammars that constrain a reply: a `response_format` (JSON schema, JSON object, GBNF or Lark) and
`tool_choice: required` (a call of an offered tool, in the model's tool-call format).

Each function returns an llguidance grammar (a string the engine's matcher takes: see
llama_core.engine.grammar) after checking it, so a schema or grammar the library cannot use is a 400
naming the field before any generation. The tool-call grammars write what llama_core.prompt.tool_calls
parses back, one call per reply:

    json          {"name": "f", "parameters": {...}}              (the parameters' JSON types enforced)
    function_tag  <function=f>{...}</function>
    python_list   [f(a="x", b=1)]                                  (Python literals: True, None)
    builtin       <|python_tag|>brave_search.call(query="...")     (code_interpreter: <|python_tag|> code)

JSON is written as json.dumps writes it (", " and ": ", no other whitespace): a small model left
free to add whitespace can pad forever.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from llama_core.errors import InvalidRequestError
from llama_core.types import BuiltinTool, ToolDefinition, ToolParamDefinition, ToolPromptFormat, builtin_tool
from llama_core.types.inference import GrammarResponseFormat, JsonSchemaResponseFormat, ResponseFormat
from llama_core.prompt.tool_calls import QUERY_TOOLS

JSON_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}

# Integers JSON readers keep exactly, and strings of a bounded length: an unbounded one lets a small
# model write digits or text until max_tokens cuts the call in half.
SAFE_INTEGER = {"type": "integer", "minimum": -(2**53 - 1), "maximum": 2**53 - 1}
MAX_STRING = 256

# ToolParamDefinition.param_type (Python's names, JSON Schema's, and what /v1 passes on) -> JSON Schema.
JSON_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string", "maxLength": MAX_STRING}, "str": {"type": "string", "maxLength": MAX_STRING},
    "integer": SAFE_INTEGER, "int": SAFE_INTEGER,
    "number": {"type": "number"}, "float": {"type": "number"},
    "boolean": {"type": "boolean"}, "bool": {"type": "boolean"},
    "array": {"type": "array"}, "list": {"type": "array"},
    "object": {"type": "object"}, "dict": {"type": "object"},
    "null": {"type": "null"},
}  # fmt: skip

# The same types as Python literals (python_list calls are parsed by ast.literal_eval), as Lark rules;
# INT has at most 15 digits, inside the JSON range above.
PYTHON_VALUES = r"""
STRING: /"([^"\\\x00-\x1f]|\\["\\bfnrt]|\\u[0-9a-fA-F]{4}){0,256}"/
INT: /-?(0|[1-9][0-9]{0,14})/
NUMBER: /-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,17})?([eE][+-]?[0-9]{1,3})?/
py_bool: "True" | "False"
py_list: "[" (py_value (", " py_value)*)? "]"
py_dict: "{" (STRING ": " py_value (", " STRING ": " py_value)*)? "}"
py_value: STRING | NUMBER | py_bool | "None" | py_list | py_dict
"""
PYTHON_RULES = {"string": "STRING", "integer": "INT", "number": "NUMBER", "boolean": "py_bool",
                "array": "py_list", "object": "py_dict", "null": '"None"'}  # fmt: skip


def response_format_grammar(fmt: ResponseFormat, field: str = "response_format") -> str:
    """The grammar of a reply in `fmt`; InvalidRequestError (400, at `field`) if it cannot be used."""
    import llguidance
    from llguidance.gbnf_to_lark import gbnf_to_lark

    if isinstance(fmt, JsonSchemaResponseFormat):
        return checked(json_schema_grammar(fmt.json_schema), f"{field}.json_schema")
    assert isinstance(fmt, GrammarResponseFormat)
    texts = {k: v for k, v in fmt.bnf.items() if k in ("gbnf", "lark")}
    if len(texts) != 1 or len(fmt.bnf) != 1 or not isinstance(next(iter(texts.values())), str):
        raise InvalidRequestError(
            "`bnf` must hold one grammar text, under `gbnf` (llama.cpp's GBNF) or `lark`", field=f"{field}.bnf"
        )
    (syntax, text), = texts.items()
    if syntax == "gbnf":
        try:
            text = gbnf_to_lark(text)
        except Exception as e:  # noqa: BLE001 - its parser's complaint, whatever its class
            raise InvalidRequestError(f"The GBNF grammar cannot be used: {_one_line(str(e))}", field=f"{field}.bnf.gbnf")
    return checked(llguidance.LLMatcher.grammar_from_lark(text), f"{field}.bnf.{syntax}")


def json_schema_grammar(schema: dict[str, Any]) -> str:
    """A JSON value valid against `schema`, laid out as json.dumps writes it (unchecked: see `checked`)."""
    import llguidance

    return llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=JSON_LAYOUT)


def tool_call_grammar(
    tools: Sequence[ToolDefinition], fmt: ToolPromptFormat, python_tag_id: int | None, field: str = "tools"
) -> str:
    """One call of one of `tools` in the model's format `fmt`; builtin tools after `<|python_tag|>`
    (whose id the tokenizer gives; a tokenizer without it cannot call builtins)."""
    import llguidance

    if not tools:
        raise InvalidRequestError("tool_choice 'required' needs at least one tool in `tools`", field="tool_choice")
    custom = [t for t in tools if builtin_tool(t.tool_name) is None]
    builtin = [builtin_tool(t.tool_name) for t in tools if builtin_tool(t.tool_name) is not None]
    calls: list[str] = []
    rules: list[str] = []
    if custom:
        calls.append("custom_call")
        rules.append(_custom_rules(custom, fmt))
    if builtin and python_tag_id is not None:
        tag = f"<[{python_tag_id}]>"
        for tool in builtin:
            if tool == BuiltinTool.code_interpreter:
                calls.append(f'{tag} CODE')
                rules.append(r"CODE: /(.|\n)+/")
            elif tool in QUERY_TOOLS:
                calls.append(f'{tag} "{tool.value}.call(query=\\"" QUERY "\\")"')
                rules.append(r'QUERY: /[^"\n]{0,256}/')  # a search query, not a document
    if not calls:
        raise InvalidRequestError("None of the offered tools can be called by this model", field=field)
    lark = "start: " + " | ".join(calls) + "\n" + "\n".join(dict.fromkeys(rules))
    return checked(llguidance.LLMatcher.grammar_from_lark(lark), field)


def _custom_rules(tools: Sequence[ToolDefinition], fmt: ToolPromptFormat) -> str:
    if fmt == ToolPromptFormat.json:
        schema = {"anyOf": [_json_call_schema(t) for t in tools], "x-guidance": JSON_LAYOUT}
        return f"custom_call: %json {json.dumps(schema)}\n"
    if fmt == ToolPromptFormat.function_tag:
        alternatives = [
            f'"<function={_lark_text(t.tool_name)}>" %json {json.dumps(_parameters_schema(t) | {"x-guidance": JSON_LAYOUT})} "</function>"'
            for t in tools
        ]
        return "custom_call: " + " | ".join(alternatives) + "\n"
    rules = [f"custom_call: \"[\" ({' | '.join(f'py_call_{i}' for i in range(len(tools)))}) \"]\""]
    for i, tool in enumerate(tools):
        rules.append(f'py_call_{i}: "{_lark_text(tool.tool_name)}(" {_python_arguments(tool)} ")"')
    return "\n".join(rules) + "\n" + PYTHON_VALUES


def _json_call_schema(tool: ToolDefinition) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"name": {"const": tool.tool_name}, "parameters": _parameters_schema(tool)},
        "required": ["name", "parameters"],
        "additionalProperties": False,
    }


def _parameters_schema(tool: ToolDefinition) -> dict[str, Any]:
    params = tool.parameters or {}
    return {
        "type": "object",
        "properties": {name: param_schema(p) for name, p in params.items()},
        "required": [name for name, p in params.items() if p.required],
        "additionalProperties": False,
    }


def param_schema(p: ToolParamDefinition) -> dict[str, Any]:
    """One parameter's JSON Schema: its type (`"string | null"` a union of them; an unknown one any
    value) and its `enum`."""
    types = [JSON_TYPES.get(t.strip().lower()) for t in p.param_type.split("|")]
    schema: dict[str, Any] = {} if None in types else types[0] if len(types) == 1 else {"anyOf": types}  # type: ignore[assignment]
    return {"enum": p.enum} if p.enum else schema


def _python_arguments(tool: ToolDefinition) -> str:
    """`a=<value>, b=<value>`: the required parameters in order, then each optional one or not."""
    items = []
    for name, p in (tool.parameters or {}).items():
        schema = param_schema(p)
        kinds = [s.get("type") for s in schema.get("anyOf", [schema])]
        rules = [_python_literal(v) for v in p.enum] if p.enum else [PYTHON_RULES.get(k, "py_value") for k in kinds]
        value = " | ".join(dict.fromkeys(rules))
        items.append((p.required, f'"{_lark_text(name)}=" ({value})'))
    required = [item for needed, item in items if needed]
    optional = [item for needed, item in items if not needed]
    if required:
        return " \", \" ".join(required) + "".join(f' (", " {item})?' for item in optional)
    if not optional:
        return ""
    any_optional = "(" + " | ".join(optional) + ")"
    return f'({any_optional} (", " {any_optional})*)?'


def _python_literal(value: Any) -> str:
    """An enum value as the Lark string of its Python literal (what ast.literal_eval reads back)."""
    literal = {True: "True", False: "False", None: "None"}.get(value) if value is None or isinstance(value, bool) else json.dumps(value)
    return json.dumps(literal)


def _lark_text(text: str) -> str:
    """`text` inside a Lark string literal (a tool or parameter name)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def checked(grammar: str, field: str) -> str:
    """`grammar` if llguidance can run it; else InvalidRequestError (400) at `field` with its reason."""
    import llguidance

    problem = llguidance.LLMatcher.validate_grammar(grammar)
    if problem:
        raise InvalidRequestError(f"The schema or grammar cannot be used: {_one_line(problem)}", field=field)
    return grammar


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]
