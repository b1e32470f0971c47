"""The one method table: route name -> HTTP verb, request type, API and core method, streams?

Built from `types.schema.REQUEST_TYPES` (request Structs), `apis.ROUTE_METHODS` (which Protocol
method serves a route) and `client.ROUTE_VERBS` (the routes that are not POST, shared with the HTTP
client so the two never disagree). Every transport (HTTP, JSON-RPC, MCP) walks this table; none of
them knows a route by name.

Non-goals: no business logic, no provider lookup beyond naming the API.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from llama_core import apis
from llama_core.client import ROUTE_VERBS
from llama_core.types._base import Base
from llama_core.types.schema import REQUEST_TYPES


class Streams(enum.Enum):
    """When a route answers a stream of chunks instead of one body."""

    never = "never"
    on_request = "on_request"  # when the request's `stream` field is true
    always = "always"  # every answer is a stream (a single result becomes a one-event stream)


# The API name `Stack.api(name)` takes, per Protocol.
API_NAMES: dict[type, str] = {
    apis.Inference: "inference",
    apis.Safety: "safety",
    apis.Memory: "memory",
    apis.AgenticSystem: "agentic_system",
    apis.Models: "models",
}

# As the original server: a turn is always an event stream, whatever `stream` says.
ALWAYS_STREAMS = frozenset({"agentic_system/turn/create"})


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


def _method(name: str) -> Method:
    protocol, call = apis.ROUTE_METHODS[name]
    request_type = REQUEST_TYPES[name]
    response_type, chunk_type = split_return(typing.get_type_hints(getattr(protocol, call))["return"])
    if name in ALWAYS_STREAMS:
        streams = Streams.always
    elif "stream" in request_type.__struct_fields__:
        streams = Streams.on_request
    else:
        streams = Streams.never
    doc = getattr(protocol, call).__doc__ or ""
    return Method(
        name=name,
        verb=ROUTE_VERBS.get(name, "POST"),
        request_type=request_type,
        api=API_NAMES[protocol],
        call=call,
        streams=streams,
        response_type=response_type,
        chunk_type=chunk_type,
        summary=doc.strip().splitlines()[0] if doc.strip() else name,
    )


METHODS: dict[str, Method] = {name: _method(name) for name in REQUEST_TYPES}


def wants_stream(method: Method, request: Base) -> bool:
    """Whether this request's answer is an event stream."""
    if method.streams is Streams.always:
        return True
    return method.streams is Streams.on_request and bool(getattr(request, "stream", False))


def provider_call(stack: Any, method: Method) -> Any:
    """The bound provider method serving `method`; NotConfiguredError if its API has no provider."""
    return getattr(stack.api(method.api), method.call)
