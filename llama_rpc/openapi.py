"""The OpenAPI 3.1 document of a running server, generated from the route table and msgspec's schemas.

Every route the stack serves (`routes.served_methods`: its API has a provider) becomes an
operation: POST and DELETE take a JSON body, GET takes the request fields as query parameters. A route that can stream answers `text/event-stream` with
its chunk type as the event schema. Component schemas are msgspec's JSON Schemas (2020-12, which
OpenAPI 3.1 uses as is). The OpenAI-compatible routes are listed with their request bodies. Error
answers are those of the error tree (`client.STATUS_ERRORS`), described by their classes' docstrings.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import msgspec

import llama_core
from llama_core.client import STATUS_ERRORS
from llama_core.routes import Method, Streams
from llama_rpc import openai, openai_types

REF = "#/components/schemas/{name}"

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "status": {"type": "integer"},
                "field": {"type": "string", "description": "the request field at fault, e.g. messages[0].content"},
                "param": {"type": ["string", "null"]},
                "code": {"type": "integer"},
            },
        }
    },
}

# GET /health: llama_core.stack.Stack.health(), 503 when an API cannot serve (the same body).
HEALTH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "apis"],
    "properties": {
        "status": {"enum": ["OK", "Error"]},
        "apis": {
            "type": "object",
            "description": "each served API's state, e.g. {\"inference\": {\"status\": \"restarting\", \"restarts\": 1, \"retry_after\": 2}}",
            "additionalProperties": {
                "type": "object",
                "required": ["status"],
                "properties": {
                    "status": {"enum": ["ok", "starting", "restarting", "down", "error"]},
                    "restarts": {"type": "integer"},
                    "retry_after": {"type": "integer", "description": "seconds, while restarting"},
                },
            },
        },
    },
}

OPENAI_BODIES = {
    "/chat/completions": openai_types.OpenAIChatCompletionRequest,
    "/completions": openai_types.OpenAICompletionRequest,
    "/embeddings": openai_types.OpenAIEmbeddingsRequest,
}


def _error_responses() -> dict[str, Any]:
    """Each status of the error tree, described by its class's docstring; 500 is the default."""
    error = {"content": {"application/json": {"schema": {"$ref": REF.format(name="Error")}}}}
    texts = {str(status): _first_line(cls) for status, cls in sorted(STATUS_ERRORS.items()) if status != 500}
    return {code: {"description": text, **error} for code, text in {**texts, "default": "Any other error"}.items()}


def _first_line(cls: type) -> str:
    return (cls.__doc__ or cls.__name__).strip().splitlines()[0]  # its own docstring, never a parent's


def _operation(method: Method, schemas: dict[Any, Any], components: dict[str, Any]) -> dict[str, Any]:
    request_schema = schemas[method.request_type]
    content: dict[str, Any] = {}
    if method.streams is not Streams.always:
        content["application/json"] = {"schema": schemas["response", method.name]}
    if method.chunk_type is not None:
        content["text/event-stream"] = {"schema": schemas[method.chunk_type]}
    op: dict[str, Any] = {
        "operationId": method.name.replace("/", "_"),
        "summary": method.summary,
        "tags": [method.api],
        "responses": {"200": {"description": "OK", "content": content}, **_error_responses()},
    }
    if method.verb == "GET":
        op["parameters"] = _query_parameters(components[request_schema["$ref"].rsplit("/", 1)[1]])
    else:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": request_schema}}}
    return op


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """A GET request's fields as query parameters (a list field repeats its key)."""
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop, "explode": True}
        for name, prop in schema.get("properties", {}).items()
    ]


def openapi_document(methods: Iterable[Method]) -> dict[str, Any]:
    """The document of a server answering `methods` (`routes.served_methods(stack)`), plus /health,
    /openapi.json and the OpenAI-compatible routes: plain JSON-able data, built once per set of routes."""
    return _document(tuple(methods))


@functools.cache
def _document(methods: tuple[Method, ...]) -> dict[str, Any]:
    keys: list[Any] = []
    types: list[Any] = []
    for method in methods:
        keys += [method.request_type, ("response", method.name)]
        types += [method.request_type, method.response_type]
        if method.chunk_type is not None:
            keys.append(method.chunk_type)
            types.append(method.chunk_type)
    keys += list(OPENAI_BODIES.values())
    types += list(OPENAI_BODIES.values())
    refs, components = msgspec.json.schema_components(types, ref_template=REF)
    schemas = dict(zip(keys, refs))
    components["Error"] = ERROR_SCHEMA

    paths: dict[str, Any] = {}
    for method in methods:
        paths.setdefault(method.path, {})[method.verb.lower()] = _operation(method, schemas, components)
    health = _plain_get("health", "Each API's state; 503 when one cannot serve (no API key needed)", "health", HEALTH_SCHEMA)
    health["responses"]["503"] = {"description": "An API cannot serve", **health["responses"]["200"]}
    health["responses"]["200"]["description"] = "Every API can serve"
    paths["/health"] = {"get": health}
    paths["/openapi.json"] = {"get": _plain_get("openapi", "This document", "health")}
    for verb, path in openai.ROUTES:
        suffix = path.removeprefix("/v1/openai/v1").removeprefix("/v1")
        op: dict[str, Any] = {
            "operationId": "openai" + path.replace("/", "_").replace("{", "").replace("}", ""),
            "summary": f"OpenAI-compatible {suffix}",
            "tags": ["openai"],
            "responses": {"200": {"description": "OpenAI's response object (or chunk stream)"}, **_error_responses()},
        }
        if verb == "POST":
            body = schemas[OPENAI_BODIES[suffix]]
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        if "{model_id}" in path:
            op["parameters"] = [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}]
        paths[path] = {verb.lower(): op}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Llama Stack", "version": llama_core.__version__, "description": "Llama Stack APIs served by llama-toolchain."},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _plain_get(op_id: str, summary: str, tag: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {"content": {"application/json": {"schema": schema or {"type": "object"}}}}
    return {"operationId": op_id, "summary": summary, "tags": [tag], "responses": {"200": {"description": "OK", **body}}}
