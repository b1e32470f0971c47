"""The one route table: every route of the stack, and the API Protocol method that serves it.

    METHODS["inference/chat_completion"]
        -> Method(name="inference/chat_completion", verb="POST", api="inference", call="chat_completion",
                  request_type=ChatCompletionRequest, response_type=ChatCompletionResponse,
                  chunk_type=ChatCompletionResponseStreamChunk, streams=Streams.on_request, summary=...)

A row of `METHODS` names a route (also its JSON-RPC method name; its HTTP path without the slash),
its verb and the Protocol method of `llama_core.apis` that serves it. The rest is read from that
method: the request type is its `request` parameter's annotation, its return `R | AsyncIterator[C]`
gives the response type R and the chunk type C, a request with a `stream` field streams when it
asks to, and the summary is its docstring's first line.

HTTP, JSON-RPC, MCP and OpenAPI (llama_rpc) and StackClient (llama_core/client.py) are built from
this table and know no route by name. Each takes a table (default `METHODS`), so a new route is one
Protocol method and one row here, and a test can serve a copy of the table with a route more.

Non-goals: no business logic, no provider lookup beyond naming the API.
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from llama_core.apis import AgenticSystem, Inference, Memory, Models, Safety
from llama_core.errors import NotConfiguredError
from llama_core.types._base import Base


class Streams(enum.Enum):
    """When a route answers a stream of chunks instead of one body."""

    never = "never"
    on_request = "on_request"  # when the request's `stream` field is true
    always = "always"  # every answer is a stream (a single result becomes a one-event stream)


# The API name `Stack.api(name)` takes, per Protocol.
API_NAMES: dict[type, str] = {
    Inference: "inference",
    Safety: "safety",
    Memory: "memory",
    AgenticSystem: "agentic_system",
    Models: "models",
}


@dataclass(frozen=True, slots=True)
class Method:
    """One route of the stack. `name` is also the JSON-RPC method name; `path` the HTTP path."""

    name: str
    verb: str  # GET | POST | DELETE
    request_type: type[Base]
    api: str  # "inference", ... (the name Stack.api takes)
    call: str  # the Protocol method on that API's provider
    streams: Streams
    response_type: Any  # what the method returns when it does not stream (may be None, list[...])
    chunk_type: type[Base] | None  # one stream event, if it can stream
    summary: str  # first line of the Protocol method's docstring

    @property
    def path(self) -> str:
        return "/" + self.name


def split_return(annotation: Any) -> tuple[Any, Any]:
    """`R | AsyncIterator[C]` -> (R, C); a plain `R` -> (R, None)."""
    args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    plain = [a for a in args if typing.get_origin(a) is not AsyncIterator]
    chunks = [typing.get_args(a)[0] for a in args if typing.get_origin(a) is AsyncIterator]
    response: Any = plain[0] if len(plain) == 1 else typing.Union[tuple(plain)]
    return response, (chunks[0] if chunks else None)


def route(
    name: str,
    protocol: type,
    call: str,
    *,
    verb: str = "POST",
    api: str | None = None,
    streams: Streams | None = None,
) -> Method:
    """The row of route `name`, served by `protocol.call`, its types read from that method's annotations.

    `api` defaults to the Protocol's name in API_NAMES; `streams` to `on_request` when the request
    has a `stream` field, else `never`. TypeError if the method does not take one request Struct.
    """
    function = getattr(protocol, call)
    hints = typing.get_type_hints(function)
    parameters = list(inspect.signature(function).parameters)[1:]  # past `self`
    request_type = hints.get(parameters[0]) if len(parameters) == 1 else None
    if not (isinstance(request_type, type) and issubclass(request_type, Base)):
        raise TypeError(f"{protocol.__name__}.{call} must take one request Struct, as `request: SomeRequest`")
    response_type, chunk_type = split_return(hints["return"])
    if streams is None:
        streams = Streams.on_request if "stream" in request_type.__struct_fields__ else Streams.never
    doc = inspect.getdoc(function) or ""
    return Method(
        name=name,
        verb=verb,
        request_type=request_type,
        api=api or API_NAMES[protocol],
        call=call,
        streams=streams,
        response_type=response_type,
        chunk_type=chunk_type,
        summary=doc.splitlines()[0] if doc else name,
    )


def table(*methods: Method) -> dict[str, Method]:
    """Rows by route name, in order."""
    return {method.name: method for method in methods}


# Routes as DESIGN.md lists them. The verb is POST unless named: GET sends the request fields as a
# query string (a list field as repeated keys), DELETE a JSON body.
METHODS: dict[str, Method] = table(
    route("inference/chat_completion", Inference, "chat_completion"),
    route("inference/completion", Inference, "completion"),
    route("inference/batch_chat_completion", Inference, "batch_chat_completion"),
    route("inference/batch_completion", Inference, "batch_completion"),
    route("inference/embeddings", Inference, "embeddings"),
    route("safety/run_shields", Safety, "run_shields"),
    route("agentic_system/create", AgenticSystem, "create_agentic_system"),
    route("agentic_system/delete", AgenticSystem, "delete_agentic_system"),
    route("agentic_system/session/create", AgenticSystem, "create_agentic_system_session"),
    route("agentic_system/session/get", AgenticSystem, "get_agentic_system_session"),
    route("agentic_system/session/delete", AgenticSystem, "delete_agentic_system_session"),
    # As the original server: a turn is always an event stream, whatever `stream` says.
    route("agentic_system/turn/create", AgenticSystem, "create_agentic_system_turn", streams=Streams.always),
    route("agentic_system/turn/get", AgenticSystem, "get_agentic_system_turn"),
    route("agentic_system/step/get", AgenticSystem, "get_agentic_system_step"),
    route("agentic_system/memory_bank/attach", AgenticSystem, "attach_memory_bank_to_agentic_system"),
    route("agentic_system/memory_bank/detach", AgenticSystem, "detach_memory_bank_from_agentic_system"),
    route("memory_banks/create", Memory, "create_memory_bank"),
    route("memory_banks/list", Memory, "list_memory_banks", verb="GET"),
    route("memory_banks/get", Memory, "get_memory_bank", verb="GET"),
    route("memory_banks/drop", Memory, "drop_memory_bank", verb="DELETE"),
    route("memory_bank/insert", Memory, "insert_documents"),
    route("memory_bank/update", Memory, "update_documents"),
    route("memory_bank/query", Memory, "query_documents"),
    route("memory_bank/documents/get", Memory, "get_documents", verb="GET"),
    route("memory_bank/documents/delete", Memory, "delete_documents", verb="DELETE"),
    route("models/list", Models, "list_models", verb="GET"),
    route("models/get", Models, "get_model", verb="GET"),
)


def wants_stream(method: Method, request: Base) -> bool:
    """Whether this request's answer is an event stream."""
    if method.streams is Streams.always:
        return True
    return method.streams is Streams.on_request and bool(getattr(request, "stream", False))


def provider_call(stack: Any, method: Method) -> Any:
    """The bound provider method serving `method`; NotConfiguredError if its API has no provider."""
    return getattr(stack.api(method.api), method.call)


def is_served(stack: Any, method: Method) -> bool:
    """Whether `stack` has a provider for `method`'s API (routes of the others answer 501 / -32601)."""
    try:
        stack.api(method.api)
    except NotConfiguredError:
        return False
    return True


def served_methods(stack: Any, methods: Mapping[str, Method] = METHODS) -> list[Method]:
    """The rows of `methods` whose API `stack` serves, in table order."""
    return [method for method in methods.values() if is_served(stack, method)]
