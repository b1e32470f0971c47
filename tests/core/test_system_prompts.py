"""Tool system prompts (byte-equal to llama-models 0.0.63's generators) and prepare_messages routing."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from llama_core.errors import UnsupportedError
from llama_core.prompt.chat_format import render_dialog_text, role_of
from llama_core.prompt.system_prompts import (
    builtin_tools_header,
    default_tool_prompt_format,
    format_date,
    function_tag_custom_tools_prompt,
    json_custom_tools_prompt,
    llama31_system_messages,
    prepare_messages,
    python_list_custom_tools_prompt,
    tool_response_text,
)
from llama_core.types import (
    BuiltinTool,
    Message,
    SystemMessage,
    TextContentItem,
    ToolChoice,
    ToolDefinition,
    ToolParamDefinition,
    ToolPromptFormat,
    UserMessage,
)

J, FT, PL = ToolPromptFormat.json, ToolPromptFormat.function_tag, ToolPromptFormat.python_list
DAY = date(2024, 12, 6)


def param(param_type: str, description: str | None = None, required: bool = True, default: Any = None):
    return ToolParamDefinition(param_type=param_type, description=description, required=required, default=default)


def builtin(name: BuiltinTool) -> ToolDefinition:
    return ToolDefinition(tool_name=name)


SONGS = ToolDefinition(
    tool_name="trending_songs",
    description="Returns the trending songs on a Music site",
    parameters={
        "n": param("int", "The number of songs to return"),
        "genre": param("str", "The genre of the songs to return", required=False),
    },
)
WEATHER = ToolDefinition(
    tool_name="get_weather",
    description="Get weather info for places",
    parameters={
        "city": param("string", "The name of the city to get the weather for"),
        "metric": param("string", "The metric for weather. Options are: celsius, fahrenheit", False, "celsius"),
    },
)
ODD = ToolDefinition(
    tool_name="odd_tool",
    description=None,  # renders "None", as the reference does
    parameters={
        "q": param("str", "Can't use <html> & 'quotes'", default=0),  # tojson escapes; falsy default omitted
        "flag": param("bool", None, required=False, default=True),
    },
)
NO_PARAMS = ToolDefinition(tool_name="ping", description="Check the service", parameters={})
BRAVE, WOLFRAM, CODE, PHOTOGEN = (
    builtin(BuiltinTool.brave_search),
    builtin(BuiltinTool.wolfram_alpha),
    builtin(BuiltinTool.code_interpreter),
    builtin(BuiltinTool.photogen),
)

CUSTOM_SETS = {
    "songs": [SONGS],
    "weather": [WEATHER],
    "two": [WEATHER, SONGS],
    "odd": [ODD],
    "no-params": [NO_PARAMS],
    "three": [NO_PARAMS, ODD, SONGS],
}


def to_reference(tools: list[ToolDefinition]) -> list[Any]:
    from llama_models.llama3.api import datatypes as ref

    return [
        ref.ToolDefinition(
            tool_name=t.tool_name,
            description=t.description,
            parameters=None
            if t.parameters is None
            else {
                k: ref.ToolParamDefinition(
                    param_type=p.param_type, description=p.description, required=p.required, default=p.default
                )
                for k, p in t.parameters.items()
            },
        )
        for t in tools
    ]


BUILDERS = {
    "json": json_custom_tools_prompt,
    "function_tag": function_tag_custom_tools_prompt,
    "python_list": python_list_custom_tools_prompt,
}


@pytest.mark.parametrize("tool_set", list(CUSTOM_SETS))
@pytest.mark.parametrize("format_name", list(BUILDERS))
def test_custom_tool_prompts_match_llama_models(format_name: str, tool_set: str):
    from llama_models.llama3.prompt_templates import (
        FunctionTagCustomToolGenerator,
        JsonCustomToolGenerator,
        PythonListCustomToolGenerator,
    )

    generator = {"json": JsonCustomToolGenerator, "function_tag": FunctionTagCustomToolGenerator,
                 "python_list": PythonListCustomToolGenerator}[format_name]()
    tools = CUSTOM_SETS[tool_set]
    assert BUILDERS[format_name](tools) == generator.gen(to_reference(tools)).render()


def test_python_list_prompt_exact_tail():
    assert python_list_custom_tools_prompt([WEATHER]).endswith(
        "Here is a list of functions in JSON format that you can invoke.\n\n[\n    {\n"
        '        "name": "get_weather",\n        "description": "Get weather info for places",\n'
        '        "parameters": {\n            "type": "dict",\n            "required": ["city"],\n'
        '            "properties": {\n                "city": {\n                    "type": "string",\n'
        '                    "description": "The name of the city to get the weather for"\n                },\n'
        '                "metric": {\n                    "type": "string",\n'
        '                    "description": "The metric for weather. Options are: celsius, fahrenheit",\n'
        '                    "default": "celsius"\n                }\n            }\n        }\n    }\n]'
    )


HEADER_CASES = [
    ("none", [], ""),
    ("code-only", [CODE], "Environment: ipython\n"),
    ("custom-only", [SONGS], "Environment: ipython\n"),
    ("builtins", [CODE, BRAVE, WOLFRAM], "Environment: ipython\nTools: brave_search, wolfram_alpha"),
    ("all", [PHOTOGEN, WOLFRAM, SONGS, CODE], "Environment: ipython\nTools: photogen, wolfram_alpha"),
]


@pytest.mark.parametrize(("tools", "text"), [c[1:] for c in HEADER_CASES], ids=[c[0] for c in HEADER_CASES])
def test_builtin_tools_header(tools: list[ToolDefinition], text: str):
    from llama_models.llama3.prompt_templates import BuiltinToolGenerator

    assert builtin_tools_header(tools) == text
    assert BuiltinToolGenerator().gen(to_reference(tools)).render() == text


@pytest.mark.parametrize(
    ("tools", "fmt", "instruction"),
    [
        ([], J, None),
        ([], J, "You are a helpful assistant."),
        ([CODE], J, ""),
        ([CODE, BRAVE, WOLFRAM], FT, "Be brief."),
        ([SONGS], J, "Be brief."),
        ([BRAVE, WEATHER, SONGS], FT, None),
        ([CODE, ODD], J, "x"),
    ],
    ids=["default", "instruction", "code-only", "builtins", "custom-json", "mixed-function-tag", "odd-json"],
)
def test_llama31_system_messages_match_llama_models(
    tools: list[ToolDefinition], fmt: ToolPromptFormat, instruction: str | None
):
    from llama_models.llama3.api.datatypes import ToolPromptFormat as RefFormat
    from llama_models.llama3.api.interface import LLama31Interface

    builtins = [t for t in to_reference(tools) if not isinstance(t.tool_name, str)]
    customs = [t for t in to_reference(tools) if isinstance(t.tool_name, str)]
    # The reference dates the prompt with today; so must we for the comparison.
    expected = LLama31Interface(RefFormat(fmt.value)).system_messages(builtins, customs, instruction)
    ours = llama31_system_messages(tools, fmt, instruction, date.today())
    assert [(m.role, m.content) for m in expected] == [(role_of(m), m.content) for m in ours]


@pytest.mark.parametrize(
    ("status", "stdout", "stderr", "text"),
    [
        ("success", "42", None, "completed\n[stdout]42[/stdout]"),
        ("failure", None, "boom", "failed\n[stderr]boom[/stderr]"),
        ("success", None, None, "completed"),
        ("failure", "partial", "boom", "failed\n[stdout]partial[/stdout]\n[stderr]boom[/stderr]"),
    ],
    ids=["success", "failure", "bare", "both"],
)
def test_tool_response_text(status: str, stdout: str | None, stderr: str | None, text: str):
    from llama_models.llama3.prompt_templates import ToolResponseGenerator

    assert tool_response_text(status, stdout, stderr) == text
    assert ToolResponseGenerator().gen(status, stdout, stderr).render() == text


@pytest.mark.parametrize(
    ("day", "text"),
    [
        (date(2024, 12, 6), "06 December 2024"),
        (date(2024, 7, 23), "23 July 2024"),
        (date(2025, 1, 1), "01 January 2025"),
    ],
    ids=["zero-padded", "july", "new-year"],
)
def test_format_date(day: date, text: str):
    assert format_date(day) == text


# ---- prepare_messages -----------------------------------------------------------------------------

Q = UserMessage(content="What's trending?")


def contents(messages: list[Message]) -> list[tuple[str, Any]]:
    return [(type(m).__name__, m.content) for m in messages]


def test_llama31_without_tools_adds_the_dated_system_prompt():
    assert contents(prepare_messages([Q], family="llama3_1", today=DAY)) == [
        ("SystemMessage", "Cutting Knowledge Date: December 2023\nToday Date: 06 December 2024\n"),
        ("UserMessage", "What's trending?"),
    ]


def test_llama31_builtin_tools_and_system_instruction():
    system = SystemMessage(content=[TextContentItem(text="Be brief."), TextContentItem(text="Be kind.")])
    messages = prepare_messages([system, Q], family="llama3_1", tools=[CODE, BRAVE, WOLFRAM], today=DAY)
    assert contents(messages) == [
        (
            "SystemMessage",
            "Environment: ipython\nTools: brave_search, wolfram_alpha\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 06 December 2024\n\nBe brief.\nBe kind.\n",
        ),
        ("UserMessage", "What's trending?"),
    ]


@pytest.mark.parametrize("fmt", [J, FT, None], ids=["json", "function_tag", "default-json"])
def test_llama31_custom_tools_become_a_user_message(fmt: ToolPromptFormat | None):
    messages = prepare_messages(
        [SystemMessage(content="Be brief."), Q],
        family="llama3_1",
        tools=[BRAVE, SONGS],
        tool_prompt_format=fmt,
        today=DAY,
    )
    assert contents(messages) == [
        (
            "SystemMessage",
            "Environment: ipython\nTools: brave_search\nCutting Knowledge Date: December 2023\n"
            "Today Date: 06 December 2024\n\nBe brief.\n",
        ),
        ("UserMessage", (function_tag_custom_tools_prompt if fmt == FT else json_custom_tools_prompt)([SONGS])),
        ("UserMessage", "What's trending?"),
    ]


@pytest.mark.parametrize(
    ("family", "vision", "fmt"),
    [("llama3_1", False, PL), ("llama3_2", True, PL), ("llama3_2", False, J), ("llama3_3", False, FT)],
    ids=["3.1-python_list", "3.2-vision-python_list", "3.2-json", "3.3-function_tag"],
)
def test_unsupported_custom_tool_formats(family: str, vision: bool, fmt: ToolPromptFormat):
    with pytest.raises(UnsupportedError, match=f"not {fmt.value}") as info:
        prepare_messages([Q], family=family, vision=vision, tools=[SONGS], tool_prompt_format=fmt, today=DAY)
    assert info.value.field == "tool_prompt_format"


@pytest.mark.parametrize("family", ["llama3_2", "llama3_3"])
def test_python_list_families_put_tools_in_the_system_message(family: str):
    messages = prepare_messages([SystemMessage(content="Be brief."), Q], family=family, tools=[CODE, BRAVE, WEATHER])
    assert contents(messages) == [
        (
            "SystemMessage",
            "Environment: ipython\nTools: brave_search\n" + python_list_custom_tools_prompt([WEATHER]) + "\nBe brief.",
        ),
        ("UserMessage", "What's trending?"),
    ]


def test_python_list_family_without_tools_keeps_the_dialog():
    assert prepare_messages([Q], family="llama3_2") == [Q]
    system = SystemMessage(content="Be brief.")
    assert prepare_messages([system, Q], family="llama3_3") == [system, Q]


def test_llama32_vision_takes_the_llama31_format():
    messages = prepare_messages([Q], family="llama3_2", vision=True, tools=[SONGS], today=DAY)
    assert contents(messages)[0] == (
        "SystemMessage",
        "Environment: ipython\n\nCutting Knowledge Date: December 2023\nToday Date: 06 December 2024\n",
    )
    assert contents(messages)[1] == ("UserMessage", json_custom_tools_prompt([SONGS]))


@pytest.mark.parametrize("family", ["llama3", "llama2", "smollm2"])
def test_families_without_tool_calling(family: str):
    assert prepare_messages([Q], family=family) == [Q]
    with pytest.raises(UnsupportedError, match=f"family '{family}'"):
        prepare_messages([Q], family=family, tools=[BRAVE])


def test_tool_choice_required_prompts_as_auto_and_none_offers_no_tools():
    # 'required' is enforced by the engine (a grammar of the call), not by the prompt.
    auto = prepare_messages([Q], family="llama3_1", tools=[SONGS], today=DAY)
    assert prepare_messages([Q], family="llama3_1", tools=[SONGS], tool_choice=ToolChoice.required, today=DAY) == auto
    none = prepare_messages([Q], family="llama3_1", tools=[SONGS], tool_choice=ToolChoice.none, today=DAY)
    assert none == prepare_messages([Q], family="llama3_1", today=DAY)


def test_input_is_not_mutated():
    messages: list[Message] = [SystemMessage(content="x"), Q]
    prepare_messages(messages, family="llama3_1", tools=[SONGS], today=DAY)
    assert messages == [SystemMessage(content="x"), Q]


@pytest.mark.parametrize(
    ("family", "vision", "fmt"),
    [
        ("llama3_1", False, J),
        ("llama3_2", True, J),
        ("llama3_2", False, PL),
        ("llama3_3", False, PL),
        ("llama3", False, J),
    ],
    ids=["3.1", "3.2-vision", "3.2", "3.3", "3.0"],
)
def test_default_tool_prompt_format(family: str, vision: bool, fmt: ToolPromptFormat):
    assert default_tool_prompt_format(family, vision) == fmt


def test_prepared_dialog_renders():
    messages = prepare_messages([Q], family="llama3_2", tools=[WEATHER])
    text = render_dialog_text(messages, default_tool_prompt_format("llama3_2"))
    assert text.startswith(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are an expert in composing"
    )
    assert text.endswith(
        '}\n]\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat\'s trending?<|eot_id|>'
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
