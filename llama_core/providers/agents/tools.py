"""The builtin tools an agent runs itself, as one table: tool name -> how to run a call.

    brave_search       {"query": str}  -> search.brave_search
    wolfram_alpha      {"query": str}  -> search.wolfram_alpha
    code_interpreter   {"code": str}   -> sandbox.run_code (bubblewrap; files it writes come back as attachments)
    photogen           refused: no image generator is available in this stack

A call the agent cannot run (an argument missing, a tool the agent was not given, a vendor's or the
sandbox's failure) still answers: its result text is the one-line error, which the model reads and
the client sees in the tool_execution step. Function-call tools are not here: they go back to the
client (turn.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from llama_core.config import AgenticSystemConfig
from llama_core.errors import LlamaError, UnsupportedError
from llama_core.providers.agents import sandbox, search
from llama_core.types.agents import Attachment
from llama_core.types.messages import BuiltinTool, ToolCall

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool may use: the provider's config, the session's scratch folder, the code interpreter's limits."""

    config: AgenticSystemConfig
    scratch: Path
    limits: sandbox.Limits = sandbox.Limits()


@dataclass(slots=True)
class ToolOutput:
    """A tool's result: the text the model reads, and files for the client."""

    content: str
    attachments: list[Attachment] = field(default_factory=list)
    failed: bool = False


def _text_argument(call: ToolCall, name: str) -> str:
    value = call.arguments.get(name)
    if not isinstance(value, str) or not value:
        raise UnsupportedError(f"{call.tool_name} takes one text argument '{name}'; this call gave {sorted(call.arguments)}.")
    return value


async def _brave(call: ToolCall, ctx: ToolContext) -> ToolOutput:
    return ToolOutput(await search.brave_search(ctx.config, _text_argument(call, "query")))


async def _wolfram(call: ToolCall, ctx: ToolContext) -> ToolOutput:
    return ToolOutput(await search.wolfram_alpha(ctx.config, _text_argument(call, "query")))


async def _code(call: ToolCall, ctx: ToolContext) -> ToolOutput:
    result = await sandbox.run_code(_text_argument(call, "code"), ctx.scratch, ctx.limits)
    return ToolOutput(result.text, result.attachments)


async def _photogen(call: ToolCall, ctx: ToolContext) -> ToolOutput:
    raise UnsupportedError("photogen is not available in this stack: no image generation model is served.")


TOOLS: dict[BuiltinTool, Callable[[ToolCall, ToolContext], Awaitable[ToolOutput]]] = {
    BuiltinTool.brave_search: _brave,
    BuiltinTool.wolfram_alpha: _wolfram,
    BuiltinTool.code_interpreter: _code,
    BuiltinTool.photogen: _photogen,
}


async def run_tool(call: ToolCall, enabled: set[str], ctx: ToolContext) -> ToolOutput:
    """Run one builtin call; every failure becomes a result whose text says what went wrong."""
    try:
        if call.tool_name not in enabled:
            raise UnsupportedError(f"The tool {call.tool_name} is not enabled for this agent.")
        return await TOOLS[BuiltinTool(call.tool_name)](call, ctx)
    except LlamaError as error:
        log.info("tool %s failed: %s", call.tool_name, error.message)  # messages never hold keys
        return ToolOutput(f"Error: {error.message}", failed=True)
