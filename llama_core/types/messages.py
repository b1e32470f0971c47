"""Chat messages tagged on `role`, tool calls and tool definitions."""

from __future__ import annotations

import enum
from typing import Any, TypeAlias

from llama_core.types._base import Base
from llama_core.types.common import Content, StopReason


class Role(enum.StrEnum):
    system = "system"
    user = "user"
    assistant = "assistant"
    ipython = "ipython"


class BuiltinTool(enum.StrEnum):
    """Tools Llama 3.1+ knows by name. A StrEnum, so `tool_name` fields compare equal to plain strings."""

    brave_search = "brave_search"
    wolfram_alpha = "wolfram_alpha"
    photogen = "photogen"
    code_interpreter = "code_interpreter"


def builtin_tool(name: str) -> BuiltinTool | None:
    """The BuiltinTool named `name`, or None for a custom tool."""
    try:
        return BuiltinTool(name)
    except ValueError:
        return None


class ToolChoice(enum.StrEnum):
    """auto: the model decides; required: its reply is a call of an offered tool (constrained
    decoding); none: no tool is offered."""

    auto = "auto"
    required = "required"
    none = "none"


class ToolPromptFormat(enum.StrEnum):
    """How custom tools are described to, and called by, the model."""

    json = "json"
    function_tag = "function_tag"
    python_list = "python_list"


class ToolCall(Base):
    """One call the model asked for. `tool_name` is a BuiltinTool value or a custom tool's name."""

    call_id: str
    tool_name: str
    arguments: dict[str, Any]


class ToolParamDefinition(Base):
    param_type: str
    description: str | None = None
    required: bool = True
    default: Any = None
    enum: list[Any] | None = None  # the only values allowed (JSON Schema's `enum`); a forced call keeps to them


class ToolDefinition(Base):
    """A tool offered to the model: a builtin by name, or a custom function with parameters."""

    tool_name: str
    description: str | None = None
    parameters: dict[str, ToolParamDefinition] | None = None


class ToolResponse(Base):
    call_id: str
    tool_name: str
    content: Content


class SystemMessage(Base, tag_field="role", tag="system"):
    content: Content


class UserMessage(Base, tag_field="role", tag="user"):
    """A user turn; `context` (RAG) is appended after the content, separated by a blank line."""

    content: Content
    context: Content | None = None


class CompletionMessage(Base, tag_field="role", tag="assistant"):
    """An assistant turn: text, the reason it stopped, and any tool calls."""

    content: Content
    stop_reason: StopReason
    tool_calls: list[ToolCall] = []


class ToolResponseMessage(Base, tag_field="role", tag="ipython"):
    """A tool's result, fed back to the model under the `ipython` role."""

    call_id: str
    tool_name: str
    content: Content


Message: TypeAlias = UserMessage | SystemMessage | ToolResponseMessage | CompletionMessage
