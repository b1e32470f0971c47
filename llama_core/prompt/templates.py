"""The example prompts behind `llama model template`: ten named templates, rendered as prompt text.

Same names, order, notes and example data as llama-models 0.0.63 (`llama3/api/interface.py`,
`template_data.py`), minus its two image templates. Each renders as a whole Llama 3.1 dialog:
`<|begin_of_text|>`, the template's message(s), and the open assistant header, special tokens inline.
Needs no tokenizer.

One deliberate difference: llama-models raises for the system templates with custom tools in
python_list format; we render them as Llama 3.2/3.3 take them (the python_list block in the system
message, no date lines).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from llama_core.errors import NotFoundError
from llama_core.prompt.chat_format import Segment, dialog_segments, render_segments
from llama_core.prompt.system_prompts import (
    llama31_system_messages,
    python_list_system_prompt,
    split_tools,
    tool_response_text,
)
from llama_core.types import (
    BuiltinTool,
    CompletionMessage,
    Message,
    StopReason,
    SystemMessage,
    ToolCall,
    ToolDefinition,
    ToolParamDefinition,
    ToolPromptFormat,
    ToolResponseMessage,
    UserMessage,
)

INSTRUCTION = "You are a helpful assistant."

BUILTIN_TOOLS = [
    ToolDefinition(tool_name=BuiltinTool.code_interpreter),
    ToolDefinition(tool_name=BuiltinTool.brave_search),
    ToolDefinition(tool_name=BuiltinTool.wolfram_alpha),
]
CUSTOM_TOOLS = [
    ToolDefinition(
        tool_name="trending_songs",
        description="Returns the trending songs on a Music site",
        parameters={
            "n": ToolParamDefinition(param_type="int", description="The number of songs to return", required=True),
            "genre": ToolParamDefinition(
                param_type="str", description="The genre of the songs to return", required=False
            ),
        },
    )
]

# A template's messages, given the custom-tool format and today's date.
Build = Callable[[ToolPromptFormat, date], list[Message]]


@dataclass(frozen=True)
class Template:
    """One example prompt: its name, the role it illustrates, and notes for the reader."""

    name: str
    role: str
    notes: str
    build: Build = field(repr=False, compare=False)


def _notes(extra: str = "") -> str:
    return "↵ represents newline" + (f"\n{extra}" if extra else "")


def _system(tools: list[ToolDefinition]) -> Build:
    def build(fmt: ToolPromptFormat, today: date) -> list[Message]:
        _, custom = split_tools(tools)
        if custom and fmt == ToolPromptFormat.python_list:
            return [SystemMessage(content=python_list_system_prompt(tools, fmt, INSTRUCTION))]
        return llama31_system_messages(tools, fmt, INSTRUCTION, today)

    return build


def _assistant(content: str, stop_reason: StopReason, *calls: ToolCall) -> Build:
    return lambda fmt, today: [CompletionMessage(content=content, stop_reason=stop_reason, tool_calls=list(calls))]


def _tool(text: str) -> Build:
    # The reference's ToolResponseGenerator output, under the ipython header.
    return lambda fmt, today: [ToolResponseMessage(call_id="uuid", tool_name=BuiltinTool.brave_search, content=text)]


TEMPLATES: tuple[Template, ...] = (
    Template(
        "user-default",
        "user",
        _notes(),
        lambda fmt, today: [UserMessage(content="Please tell me how to plan a trip to New York")],
    ),
    Template(
        "assistant-builtin-tool-call",
        "assistant",
        _notes("Notice <|python_tag|>"),
        _assistant(
            "",
            StopReason.end_of_message,
            ToolCall(call_id="uuid", tool_name=BuiltinTool.brave_search, arguments={"query": "Who won NBA in 2024?"}),
        ),
    ),
    Template(
        "assistant-custom-tool-call",
        "assistant",
        _notes("Notice <function=...> format"),
        _assistant(
            "",
            StopReason.end_of_turn,
            ToolCall(call_id="uuid", tool_name="trending_songs", arguments={"country": "US", "n": 10}),
        ),
    ),
    Template(
        "assistant-default",
        "assistant",
        _notes(),
        _assistant("Hi, I am a helpful assistant. What can I help you with today?", StopReason.end_of_turn),
    ),
    Template("system-builtin-and-custom-tools", "system", _notes(), _system(BUILTIN_TOOLS + CUSTOM_TOOLS)),
    Template("system-builtin-tools-only", "system", _notes(), _system(BUILTIN_TOOLS)),
    Template("system-custom-tools-only", "system", _notes(), _system(CUSTOM_TOOLS)),
    Template("system-default", "system", _notes(), _system([])),
    Template(
        "tool-success",
        "tool",
        _notes("Note ipython header and [stdout]"),
        _tool(tool_response_text("success", stdout='{"results":["something something"]}')),
    ),
    Template(
        "tool-failure",
        "tool",
        _notes("Note ipython header and [stderr]"),
        _tool(
            tool_response_text(
                "failure", stderr="brave_search encounter an error: could not communicate with api.brave.com"
            )
        ),
    ),
)

TEMPLATE_NAMES = tuple(t.name for t in TEMPLATES)


def get_template(name: str) -> Template:
    """The template called `name`; NotFoundError naming the valid names otherwise."""
    for template in TEMPLATES:
        if template.name == name:
            return template
    raise NotFoundError(f"No template named '{name}'. Valid names: {', '.join(TEMPLATE_NAMES)}")


def template_messages(
    name: str, tool_prompt_format: ToolPromptFormat = ToolPromptFormat.json, today: date | None = None
) -> list[Message]:
    """The messages of template `name` (before the chat format adds BOS and the assistant header)."""
    return get_template(name).build(tool_prompt_format, today or date.today())


def template_segments(
    name: str, tool_prompt_format: ToolPromptFormat = ToolPromptFormat.json, today: date | None = None
) -> list[Segment]:
    """Template `name` as segments: text pieces and `Special` tokens (for colouring them apart)."""
    return dialog_segments(template_messages(name, tool_prompt_format, today), tool_prompt_format)


def render_template(
    name: str, tool_prompt_format: ToolPromptFormat = ToolPromptFormat.json, today: date | None = None
) -> str:
    """Template `name` as prompt text, special tokens inline, e.g. for tool-success:

    `<|begin_of_text|><|start_header_id|>ipython<|end_header_id|>\\n\\ncompleted\\n[stdout]...[/stdout]<|eot_id|>`
    followed by the open assistant header. `today` pins the date of the system templates.
    """
    return render_segments(template_segments(name, tool_prompt_format, today))
