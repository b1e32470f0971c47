"""JSON Schemas of the request types, the route table, and the API Protocols that serve it.

That each schema accepts a real request of its route is checked in test_types.py, beside the examples.
"""

from __future__ import annotations

import json
import typing
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import msgspec
import pytest

from llama_core import apis
from llama_core.routes import API_NAMES, METHODS
from llama_core.types import EmbeddingsRequest, json_schema
from llama_core.types._base import Base

REQUEST_TYPES = {name: method.request_type for name, method in METHODS.items()}

# The routes of DESIGN.md "The API surface" (health and the OpenAI-compatible routes aside).
DESIGN_ROUTES = [
    "inference/chat_completion",
    "inference/completion",
    "inference/batch_chat_completion",
    "inference/batch_completion",
    "inference/embeddings",
    "safety/run_shields",
    "agentic_system/create",
    "agentic_system/delete",
    "agentic_system/session/create",
    "agentic_system/session/get",
    "agentic_system/session/delete",
    "agentic_system/turn/create",
    "agentic_system/turn/get",
    "agentic_system/step/get",
    "agentic_system/memory_bank/attach",
    "agentic_system/memory_bank/detach",
    "memory_banks/create",
    "memory_banks/list",
    "memory_banks/get",
    "memory_banks/drop",
    "memory_bank/insert",
    "memory_bank/update",
    "memory_bank/query",
    "memory_bank/documents/get",
    "memory_bank/documents/delete",
    "models/list",
    "models/get",
]


def test_request_types_cover_the_design_routes() -> None:
    assert list(REQUEST_TYPES) == DESIGN_ROUTES
    assert len(set(REQUEST_TYPES.values())) == len(REQUEST_TYPES)  # one request Struct per route


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


@pytest.mark.parametrize("route", DESIGN_ROUTES)
def test_schema_is_a_self_contained_object(route: str) -> None:
    request_type = REQUEST_TYPES[route]
    schema = json_schema(request_type)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {f.encode_name for f in msgspec.structs.fields(request_type)}
    assert _refs(schema) == []
    assert "$defs" not in json.dumps(schema)
    jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_rejects_a_bad_tag() -> None:
    schema = json_schema(REQUEST_TYPES["inference/chat_completion"])
    assert schema["properties"]["messages"]["items"]["discriminator"] == {"propertyName": "role"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"model": "m", "messages": [{"role": "robot", "content": "hi"}]}, schema)


def test_pinned_schema_of_embeddings_request() -> None:
    assert json_schema(EmbeddingsRequest) == {
        "title": "EmbeddingsRequest",
        "description": "POST /inference/embeddings: one vector per item of `contents` (parts of one item are joined).",
        "type": "object",
        "properties": {
            "model": {"type": "string"},
            "contents": {
                "type": "array",
                "items": {
                    "anyOf": [
                        {"type": "string"},
                        {
                            "type": "array",
                            "items": {
                                "title": "TextContentItem",
                                "description": 'One text part of a message\'s content: `{"type": "text", "text": ...}`.',
                                "type": "object",
                                "properties": {"type": {"enum": ["text"]}, "text": {"type": "string"}},
                                "required": ["type", "text"],
                                "additionalProperties": False,
                            },
                        },
                    ]
                },
                "minItems": 1,
                "maxItems": 2048,
            },
        },
        "required": ["model", "contents"],
        "additionalProperties": False,
    }


class _Node(Base):
    children: list[_Node] = []


def test_recursive_type_is_refused() -> None:
    with pytest.raises(TypeError, match="_Node refers to itself"):
        json_schema(_Node)


# --- the API Protocols serve exactly the routes ------------------------------------------------


PROTOCOLS = {name: protocol for protocol, name in API_NAMES.items()}
ROUTE_METHODS = {name: (PROTOCOLS[method.api], method.call) for name, method in METHODS.items()}


def test_route_methods_match_request_types() -> None:
    assert list(ROUTE_METHODS) == DESIGN_ROUTES


@pytest.mark.parametrize("route", DESIGN_ROUTES)
def test_protocol_method_takes_the_route_request(route: str) -> None:
    protocol, name = ROUTE_METHODS[route]
    hints = typing.get_type_hints(getattr(protocol, name))
    request_type = REQUEST_TYPES[route]
    assert hints["request"] is request_type
    streams = any(typing.get_origin(arm) is AsyncIterator for arm in typing.get_args(hints["return"]))
    # A method may stream exactly when its request has a `stream` flag.
    assert streams == ("stream" in request_type.__struct_fields__)


def test_every_protocol_method_is_routed() -> None:
    routed = set(ROUTE_METHODS.values())
    for protocol in (apis.Inference, apis.Safety, apis.Memory, apis.AgenticSystem, apis.Models):
        methods = {n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")}
        assert methods == {name for p, name in routed if p is protocol}, protocol.__name__
