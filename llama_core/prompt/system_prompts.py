"""System prompts for tools, and `prepare_messages`: where a request's tools go, per model family.

Every builder returns text byte-identical to llama-models 0.0.63's Jinja generators
(`llama3/prompt_templates/system_prompts.py`), whitespace included, written as plain string code.

Routing (llama-stack, Dec 2024):

    llama3_1, and llama3_2 vision   system = [Environment: ipython / Tools: ...] + dates + caller's system
                                    text; custom tools in an extra user message (json or function_tag)
    llama3_2 text, llama3_3         system = [Environment/Tools] + python_list block + caller's system
                                    text; no dates; custom tools only as python_list
    any other family                messages unchanged; tools are unsupported

The Llama 3.1 system text is laid out as llama-models' `LLama31Interface.system_messages` does
(the caller's text after a blank line, then a final newline), as in Meta's published prompt format;
llama-stack joined it with a single newline and no final one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

from llama_core.errors import UnsupportedError
from llama_core.types import (
    BuiltinTool,
    Content,
    Message,
    SystemMessage,
    ToolChoice,
    ToolDefinition,
    ToolPromptFormat,
    UserMessage,
    builtin_tool,
)

KNOWLEDGE_CUTOFF = "December 2023"

# Model families (values of the registry's family column) and how each takes tools.
LLAMA31_FAMILIES = frozenset({"llama3_1"})
PYTHON_LIST_FAMILIES = frozenset({"llama3_2", "llama3_3"})

# Per-format custom-tool formats each routing accepts; the first is the default.
LLAMA31_FORMATS = (ToolPromptFormat.json, ToolPromptFormat.function_tag)
PYTHON_LIST_FORMATS = (ToolPromptFormat.python_list,)


def format_date(day: date) -> str:
    """`06 December 2024`: day zero-padded, full month name, as the reference's strftime("%d %B %Y")."""
    return f"{day.day:02d} {day.strftime('%B')} {day.year}"


def split_tools(tools: Sequence[ToolDefinition]) -> tuple[list[ToolDefinition], list[ToolDefinition]]:
    """(builtin, custom): a tool is builtin when its name is a BuiltinTool value."""
    builtin = [t for t in tools if builtin_tool(t.tool_name) is not None]
    custom = [t for t in tools if builtin_tool(t.tool_name) is None]
    return builtin, custom


def builtin_tools_header(tools: Sequence[ToolDefinition]) -> str:
    """`Environment: ipython` (turns on code_interpreter), then `Tools: a, b` for the other builtins.

    Any tool, custom ones included, turns the environment on; "" when there are no tools.
    """
    if not tools:
        return ""
    names = [t.tool_name for t in tools if builtin_tool(t.tool_name) not in (None, BuiltinTool.code_interpreter)]
    return "Environment: ipython\n" + (f"Tools: {', '.join(names)}" if names else "")


def date_block(today: date) -> str:
    return f"Cutting Knowledge Date: {KNOWLEDGE_CUTOFF}\nToday Date: {format_date(today)}"


def llama31_system_prompt(tools: Sequence[ToolDefinition], instruction: str | None, today: date) -> str:
    """The Llama 3.1 system message: tools header, dates, the caller's instruction, a final newline."""
    text = builtin_tools_header(tools) + "\n" if tools else ""
    text += date_block(today)
    if instruction:
        text += "\n\n" + instruction
    return text + "\n"


def _tojson(value: Any) -> str:
    # Jinja's `tojson` filter: keys sorted, and <, >, &, ' escaped for HTML.
    text = json.dumps(value, sort_keys=True)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027")):
        text = text.replace(char, escape)
    return text


def _required(tool: ToolDefinition) -> list[str]:
    return [name for name, p in (tool.parameters or {}).items() if p.required is True]


def json_custom_tools_prompt(tools: Sequence[ToolDefinition]) -> str:
    """Llama 3.1 "json" custom tools, for a user message (properties is a list; every type "object")."""
    blocks = []
    for t in tools:
        props = ",".join(
            f'\n                {{\n                    "{name}": {{\n                        "type": "object",'
            f'\n                        "description": "{p.description}"\n                    }}\n                }}'
            for name, p in (t.parameters or {}).items()
        )
        blocks.append(
            f'{{\n    "type": "function",\n    "function": {{\n        "name": "{t.tool_name}",'
            f'\n        "description": "{t.description}",\n        "parameters": {{\n            "type": "object",'
            f'\n            "properties": [{props}\n            ],\n            "required": {_tojson(_required(t))}'
            "\n        }\n    }\n}\n"
        )
    return (
        "Answer the user's question by making use of the following functions if needed.\n"
        "If none of the function can be used, please say so.\n"
        "Here is a list of functions in JSON format:\n" + "".join(blocks) + "\nReturn function calls in JSON format."
    )


FUNCTION_TAG_INSTRUCTIONS = """\
Think very carefully before calling functions.
If you choose to call a function ONLY reply in the following format with no prefix or suffix:

<function=example_function_name>{"example_name": "example_value"}</function>

Reminder:
- If looking for real time information use relevant functions before falling back to brave_search
- Function calls MUST follow the specified format, start with <function= and end with </function>
- Required parameters MUST be specified
- Only call one function at a time
- Put the entire function call reply on one line"""


def function_tag_custom_tools_prompt(tools: Sequence[ToolDefinition]) -> str:
    """Llama 3.1 "function_tag" custom tools, for a user message; parameters as sorted JSON, no defaults."""
    blocks = []
    for t in tools:
        params = {
            name: {"description": p.description, "param_type": p.param_type, "required": p.required}
            for name, p in (t.parameters or {}).items()
        }
        blocks.append(
            f"Use the function '{t.tool_name}' to '{t.description}':\n"
            f'{{"name": "{t.tool_name}", "description": "{t.description}", "parameters": {_tojson(params)}}}\n\n'
        )
    return "You have access to the following functions:\n\n" + "".join(blocks) + FUNCTION_TAG_INSTRUCTIONS


PYTHON_LIST_PREAMBLE = """\
You are an expert in composing functions. You are given a question and a set of possible functions.
Based on the question, you will need to make one or more function/tool calls to achieve the purpose.
If none of the function can be used, point it out. If the given question lacks the parameters required by the function,
also point it out. You should only return the function call in tools call sections.

If you decide to invoke any of the function(s), you MUST put it in the format of [func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)]
You SHOULD NOT include any other text in the response.

Here is a list of functions in JSON format that you can invoke.

"""


def python_list_custom_tools_prompt(tools: Sequence[ToolDefinition]) -> str:
    """Llama 3.2/3.3 "python_list" custom tools, for the system message (ends with `]`, no newline)."""
    blocks = []
    for t in tools:
        props = ",".join(
            f'\n                "{name}": {{\n                    "type": "{p.param_type}",'
            f'\n                    "description": "{p.description}"'
            + (f',\n                    "default": "{p.default}"' if p.default else "")
            + "\n                }"
            for name, p in (t.parameters or {}).items()
        )
        blocks.append(
            f'{{\n        "name": "{t.tool_name}",\n        "description": "{t.description}",'
            f'\n        "parameters": {{\n            "type": "dict",\n            "required": {_tojson(_required(t))},'
            f'\n            "properties": {{{props}\n            }}\n        }}\n    }}'
        )
    return PYTHON_LIST_PREAMBLE + "[\n    " + ",\n    ".join(blocks) + "\n]"


def custom_tools_prompt(tools: Sequence[ToolDefinition], tool_prompt_format: ToolPromptFormat) -> str:
    """The custom-tool instructions in `tool_prompt_format`."""
    if tool_prompt_format == ToolPromptFormat.json:
        return json_custom_tools_prompt(tools)
    if tool_prompt_format == ToolPromptFormat.function_tag:
        return function_tag_custom_tools_prompt(tools)
    return python_list_custom_tools_prompt(tools)


def tool_response_text(status: str, stdout: str | None = None, stderr: str | None = None) -> str:
    """A code-interpreter style result: `completed` / `failed`, then `[stdout]...[/stdout]`, `[stderr]...[/stderr]`."""
    text = "completed" if status == "success" else "failed"
    if stdout:
        text += f"\n[stdout]{stdout}[/stdout]"
    if stderr:
        text += f"\n[stderr]{stderr}[/stderr]"
    return text


# ---- routing --------------------------------------------------------------------------------------


def llama31_system_messages(
    tools: Sequence[ToolDefinition], tool_prompt_format: ToolPromptFormat, instruction: str | None, today: date
) -> list[Message]:
    """Llama 3.1: the system message, plus a user message describing custom tools when there are any."""
    messages: list[Message] = [SystemMessage(content=llama31_system_prompt(tools, instruction, today))]
    _, custom = split_tools(tools)
    if custom:
        _check_format(tool_prompt_format, LLAMA31_FORMATS, "Llama 3.1")
        messages.append(UserMessage(content=custom_tools_prompt(custom, tool_prompt_format)))
    return messages


def python_list_system_prompt(
    tools: Sequence[ToolDefinition], tool_prompt_format: ToolPromptFormat, instruction: str | None
) -> str:
    """Llama 3.2 text / 3.3: builtin header, python_list block, then the caller's instruction."""
    builtin, custom = split_tools(tools)
    text = builtin_tools_header(builtin) + "\n" if builtin else ""
    if custom:
        _check_format(tool_prompt_format, PYTHON_LIST_FORMATS, "Llama 3.2 and 3.3")
        text += python_list_custom_tools_prompt(custom) + "\n"
    return text + (instruction or "")


def default_tool_prompt_format(family: str, vision: bool = False) -> ToolPromptFormat:
    """The custom-tool format a family is trained on: json for 3.1 (and 3.2 vision), else python_list."""
    if family in PYTHON_LIST_FAMILIES and not vision:
        return ToolPromptFormat.python_list
    return ToolPromptFormat.json


def prepare_messages(
    messages: Sequence[Message],
    *,
    family: str,
    tools: Sequence[ToolDefinition] = (),
    tool_prompt_format: ToolPromptFormat | None = None,
    tool_choice: ToolChoice = ToolChoice.auto,
    vision: bool = False,
    today: date | None = None,
) -> list[Message]:
    """The dialog to encode for a chat request: system prompt and tool instructions added per family.

    A leading system message becomes the instruction inside the new system prompt. `family` is a
    registry family (`llama3_1`, `llama3_2`, `llama3_3`, ...); `vision` marks 3.2 Vision models, which
    take the 3.1 format. `tool_prompt_format=None` means the family's default. `today` pins the date.
    Raises UnsupportedError for tools on a family without tool calling, or a format it cannot take.
    """
    if tool_choice == ToolChoice.none:  # 'required' prompts as 'auto' does; the engine enforces the call
        tools = ()
    rest = list(messages)
    instruction = None
    if rest and isinstance(rest[0], SystemMessage):
        instruction = _system_text(rest.pop(0).content)
    fmt = tool_prompt_format or default_tool_prompt_format(family, vision)

    if family in LLAMA31_FAMILIES or (family in PYTHON_LIST_FAMILIES and vision):
        return llama31_system_messages(tools, fmt, instruction, today or date.today()) + rest
    if family in PYTHON_LIST_FAMILIES:
        system = python_list_system_prompt(tools, fmt, instruction)
        return ([SystemMessage(content=system)] if system else []) + rest
    if tools:
        raise UnsupportedError(f"Tool calling is not supported by models of family '{family}'", field="tools")
    return list(messages)


def _system_text(content: Content) -> str:
    # As llama-stack flattens a system message: text items joined by newlines.
    return content if isinstance(content, str) else "\n".join(item.text for item in content)


def _check_format(fmt: ToolPromptFormat, accepted: Sequence[ToolPromptFormat], models: str) -> None:
    if fmt not in accepted:
        names = " or ".join(f.value for f in accepted)
        raise UnsupportedError(
            f"{models} models take custom tools in {names} format, not {fmt.value}", field="tool_prompt_format"
        )
