"""MCP (Model Context Protocol, handshake era 2025-11-25) over the same method table, on stdio.

    initialize / notifications/initialized / ping      lifecycle; 2025-11-25, 2025-06-18, 2025-03-26
                                                        and 2024-11-05 are echoed, others get 2025-11-25
    tools/list, tools/call                              one tool per served route (`/` -> `_`):
                                                        inputSchema = the request's JSON Schema,
                                                        outputSchema = the result's (non-objects
                                                        wrapped as {"result": ...})
    resources/list, resources/read                      llama://models/<descriptor>,
                                                        llama://memory_banks/<bank_id>
    prompts/list, prompts/get                           the `llama model template` templates
    notifications/progress                              one per chunk of a streaming call, when the
                                                        caller sent a progressToken
    notifications/cancelled                             stops the request; it gets no answer

The routes of the table stay callable by their own names too (plain JSON-RPC, llama_rpc/jsonrpc.py),
and requests before `initialize` are served (a plain JSON-RPC client never sends it). A tool's
failure (bad arguments, unknown model, ...) is a result with `isError: true` and one line of text,
so a model can correct itself; an unknown tool is JSON-RPC -32602. `server/discover` (the
2026-07-28 era) answers -32601 at once, so SDK clients in "auto" mode fall back to `initialize`.

Non-goals: no 2026-07-28 stateless era, no subscriptions, sampling, elicitation or tasks; one page
per list (no cursors are handed out).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cached_property
from typing import Any
from urllib.parse import quote, unquote

import msgspec

import llama_core
from llama_core.errors import LlamaError, NotFoundError, shown
from llama_core.routes import METHODS, Method, Streams, is_served, provider_call, served_methods
from llama_core.types import ToolPromptFormat
from llama_core.types._base import Base
from llama_core.types.folds import chunk_text
from llama_core.types.memory import GetMemoryBankRequest, ListMemoryBanksRequest
from llama_core.types.models import ModelsGetRequest, ModelsListRequest
from llama_core.types.schema import decode_request, json_schema
from llama_rpc.jsonrpc import (
    INVALID_PARAMS,
    MCP_EOF_GRACE_S,
    Connection,
    Context,
    Handler,
    JsonRpcError,
    NotificationHandler,
    call_method,
    table_handlers,
)
from llama_rpc.stdio import Receiver, Sender, process_stdio, read_lines

log = logging.getLogger("llama_rpc.mcp")

LATEST_PROTOCOL_VERSION = "2025-11-25"
PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
SERVER_INFO = {"name": "llama-toolchain", "title": "Llama Stack", "version": llama_core.__version__}
INSTRUCTIONS = (
    "Llama Stack APIs as tools: inference (chat, completion, embeddings), models, memory banks, "
    "safety and agents, as this stack serves them. To get progress notifications while text is "
    "generated, send a progressToken in the call's `_meta` (the call then streams; `stream: true` alone sends none)."
)
RESOURCE_NOT_FOUND = -32002
MODELS_URI = "llama://models/"
BANKS_URI = "llama://memory_banks/"

_encoder = msgspec.json.Encoder()


# --- params (unknown members ignored: the protocol grows) -------------------------------------


class _Params(Base, forbid_unknown_fields=False):
    pass


class Meta(_Params):
    progressToken: int | str | None = None  # noqa: N815 -- the protocol's name


class InitializeParams(_Params):
    protocolVersion: str  # noqa: N815
    capabilities: dict[str, Any] = {}
    clientInfo: dict[str, Any] = {}  # noqa: N815


class CallToolParams(_Params):
    name: str
    arguments: dict[str, Any] = {}
    meta: Meta = msgspec.field(default_factory=Meta, name="_meta")


class ListParams(_Params):
    cursor: str | None = None


class ReadResourceParams(_Params):
    uri: str


class GetPromptParams(_Params):
    name: str
    arguments: dict[str, str] = {}


class CancelledParams(_Params):
    requestId: int | str  # noqa: N815
    reason: str | None = None


def _params(cls: type[Any], ctx: Context) -> Any:
    return decode_request(cls, ctx.params or b"")


def _no_cursor(ctx: Context) -> None:
    if _params(ListParams, ctx).cursor is not None:
        raise JsonRpcError(INVALID_PARAMS, "Invalid cursor: this server answers every list in one page")


# --- tools ------------------------------------------------------------------------------------


def tool_name(method: Method) -> str:
    """`inference/chat_completion` -> `inference_chat_completion` (MCP names take no `/`)."""
    return method.name.replace("/", "_")


def tool_methods(methods: Mapping[str, Method]) -> dict[str, Method]:
    """Tool name -> route, for every route of `methods`."""
    return {tool_name(m): m for m in methods.values()}


def _is_object(response_type: Any) -> bool:
    return isinstance(response_type, type) and issubclass(response_type, msgspec.Struct)


def output_schema(method: Method) -> dict[str, Any]:
    """The result's JSON Schema; a non-object result is wrapped as {"result": ...}."""
    if _is_object(method.response_type):
        return json_schema(method.response_type)
    return {"type": "object", "properties": {"result": json_schema(method.response_type)}, "required": ["result"]}


def tool(method: Method) -> dict[str, Any]:
    """The MCP Tool of one route."""
    progress = " Sends notifications/progress per generated chunk when the call's `_meta` has a progressToken."
    streams = progress if method.streams is Streams.on_request else ""
    return {
        "name": tool_name(method),
        "title": method.name,
        "description": method.summary + streams,
        "inputSchema": json_schema(method.request_type),
        "outputSchema": output_schema(method),
    }


def structured(method: Method, result: Any) -> Any:
    return result if _is_object(method.response_type) else {"result": result}


def tool_error(error: LlamaError) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": error.message}], "isError": True}


# --- the server -------------------------------------------------------------------------------


class McpServer:
    """MCP and plain JSON-RPC for one started Stack (anything with `api(name)`), over the routes
    of `methods` (the route table)."""

    def __init__(self, stack: Any, methods: Mapping[str, Method] = METHODS) -> None:
        self.stack = stack
        self.methods = methods
        self.tool_methods = tool_methods(methods)
        self.client: InitializeParams | None = None

    def served(self, method: Method) -> bool:
        return is_served(self.stack, method)

    @cached_property
    def tools(self) -> list[dict[str, Any]]:
        return [tool(m) for m in served_methods(self.stack, self.methods)]

    def connection(self, sender: Sender, **options: Any) -> Connection:
        """A Connection answering MCP and every route of the table, writing to `sender`."""
        handlers: dict[str, Handler] = {
            **table_handlers(self.stack, self.methods),
            "initialize": self.initialize,
            "ping": self.ping,
            "logging/setLevel": self.ping,  # accepted; logs go to stderr regardless
            "tools/list": self.list_tools,
            "tools/call": self.call_tool,
            "resources/list": self.list_resources,
            "resources/templates/list": self.list_resource_templates,
            "resources/read": self.read_resource,
            "prompts/list": self.list_prompts,
            "prompts/get": self.get_prompt,
        }
        connection = Connection(sender, handlers, **options)

        def cancelled(params: msgspec.Raw | None) -> None:
            p = decode_request(CancelledParams, params or b"")
            if connection.cancel(p.requestId):
                log.info("cancelling request %r: %s", p.requestId, p.reason or "no reason given")

        notifications: dict[str, NotificationHandler] = {
            "notifications/initialized": lambda params: None,
            "notifications/cancelled": cancelled,
        }
        connection.notifications.update(notifications)
        return connection

    async def serve(self, receiver: Receiver, sender: Sender, **options: Any) -> None:
        """Serve one client on a pair of byte streams until its input ends."""
        await self.connection(sender, **options).serve(read_lines(receiver))

    # lifecycle

    async def initialize(self, ctx: Context) -> dict[str, Any]:
        self.client = _params(InitializeParams, ctx)
        ctx.connection.eof_grace = min(ctx.connection.eof_grace, MCP_EOF_GRACE_S)  # a host closing stdin is leaving
        asked = self.client.protocolVersion
        version = asked if asked in PROTOCOL_VERSIONS else LATEST_PROTOCOL_VERSION
        capabilities = {
            "tools": {"listChanged": False},
            "resources": {"subscribe": False, "listChanged": False},
            "prompts": {"listChanged": False},
            "logging": {},
        }
        return {"protocolVersion": version, "capabilities": capabilities, "serverInfo": SERVER_INFO, "instructions": INSTRUCTIONS}

    async def ping(self, ctx: Context) -> dict[str, Any]:
        return {}

    # tools

    async def list_tools(self, ctx: Context) -> dict[str, Any]:
        _no_cursor(ctx)
        return {"tools": self.tools}

    async def call_tool(self, ctx: Context) -> dict[str, Any]:
        p = _params(CallToolParams, ctx)
        method = self.tool_methods.get(p.name) or self.methods.get(p.name)
        if method is None or not self.served(method):
            raise JsonRpcError(INVALID_PARAMS, f"Unknown tool: {shown(p.name)}", {"name": shown(p.name)})
        token = p.meta.progressToken
        try:
            request = decode_request(method.request_type, _encoder.encode(p.arguments))
            # With a progressToken a streaming route streams (a turn, which always streams over HTTP,
            # then sends its events rather than one Turn), so each chunk is a progress notification.
            if token is not None and method.streams is not Streams.never and "stream" in method.request_type.__struct_fields__:
                request = msgspec.structs.replace(request, stream=True)  # type: ignore[type-var]

            async def on_chunk(chunk: Any, n: int) -> None:
                if token is not None:
                    text = chunk_text(chunk)
                    await ctx.notify("notifications/progress", {"progressToken": token, "progress": n, "message": text})

            result = await call_method(self.stack, method, request, on_chunk)
        except LlamaError as error:
            return tool_error(error)
        return {
            "content": [{"type": "text", "text": _encoder.encode(result).decode()}],
            "structuredContent": structured(method, result),
            "isError": False,
        }

    # resources

    async def _call(self, name: str, request: Base) -> Any:
        return await provider_call(self.stack, self.methods[name])(request)

    async def list_resources(self, ctx: Context) -> dict[str, Any]:
        _no_cursor(ctx)
        resources = [
            {"uri": MODELS_URI + quote(m.descriptor, safe=""), "name": m.descriptor, "title": f"Model {m.descriptor}",
             "description": m.description or None, "mimeType": "application/json"}
            for m in await self._call("models/list", ModelsListRequest())
        ]  # fmt: skip
        if self.served(self.methods["memory_banks/list"]):
            resources += [
                {"uri": BANKS_URI + quote(b.bank_id, safe=""), "name": b.name, "title": f"Memory bank {b.name}",
                 "mimeType": "application/json"}
                for b in await self._call("memory_banks/list", ListMemoryBanksRequest())
            ]  # fmt: skip
        return {"resources": [{k: v for k, v in r.items() if v is not None} for r in resources]}

    async def list_resource_templates(self, ctx: Context) -> dict[str, Any]:
        _no_cursor(ctx)
        return {
            "resourceTemplates": [
                {"uriTemplate": MODELS_URI + "{descriptor}", "name": "model", "mimeType": "application/json"},
                {"uriTemplate": BANKS_URI + "{bank_id}", "name": "memory_bank", "mimeType": "application/json"},
            ]
        }

    async def read_resource(self, ctx: Context) -> dict[str, Any]:
        uri = _params(ReadResourceParams, ctx).uri
        try:
            if uri.startswith(MODELS_URI):
                found = await self._call("models/get", ModelsGetRequest(core_model_id=unquote(uri[len(MODELS_URI) :])))
            elif uri.startswith(BANKS_URI) and self.served(self.methods["memory_banks/get"]):
                found = await self._call("memory_banks/get", GetMemoryBankRequest(bank_id=unquote(uri[len(BANKS_URI) :])))
            else:
                found = None
        except NotFoundError:
            found = None
        if found is None:
            raise JsonRpcError(RESOURCE_NOT_FOUND, f"Resource not found: {shown(uri)}", {"uri": shown(uri)})
        return {"contents": [{"uri": uri, "mimeType": "application/json", "text": _encoder.encode(found).decode()}]}

    # prompts

    async def list_prompts(self, ctx: Context) -> dict[str, Any]:
        from llama_core.prompt.templates import TEMPLATES

        _no_cursor(ctx)
        argument = {"name": "tool_prompt_format", "description": "json (default), function_tag or python_list", "required": False}
        return {
            "prompts": [
                {"name": t.name, "title": t.name, "description": f"A {t.role} prompt. {t.notes}", "arguments": [argument]}
                for t in TEMPLATES
            ]
        }

    async def get_prompt(self, ctx: Context) -> dict[str, Any]:
        from llama_core.prompt.templates import TEMPLATE_NAMES, get_template, render_template

        p = _params(GetPromptParams, ctx)
        if p.name not in TEMPLATE_NAMES:
            raise JsonRpcError(INVALID_PARAMS, f"Unknown prompt: {shown(p.name)}", {"name": shown(p.name)})
        fmt = p.arguments.get("tool_prompt_format", "json")
        try:
            tool_prompt_format = ToolPromptFormat(fmt)
        except ValueError:
            valid = ", ".join(f.value for f in ToolPromptFormat)
            raise JsonRpcError(INVALID_PARAMS, f"Invalid tool_prompt_format '{shown(fmt)}': use one of {valid}", {"field": "arguments.tool_prompt_format"}) from None
        text = render_template(p.name, tool_prompt_format=tool_prompt_format)
        return {
            "description": f"A {get_template(p.name).role} prompt, rendered in the Llama 3 chat format",
            "messages": [{"role": "user", "content": {"type": "text", "text": text}}],
        }


async def serve_stdio(stack: Any) -> None:
    """Start `stack` and serve MCP on this process's stdin/stdout until stdin ends.

    stdout is taken over first, so the stack's worker processes inherit stderr as their fd 1.
    """
    with process_stdio() as (receiver, sender):
        async with stack:
            server = McpServer(stack)
            log.info("serving MCP on stdio (%d tools)", len(server.tools))
            await server.serve(receiver, sender)
