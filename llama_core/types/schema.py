"""Request Structs at the edge: their JSON Schemas, and decoding a body into one.

Every transport decodes a route's body (its request type: `llama_core.routes.METHODS`) with
`decode_request`, and describes it with `json_schema` (an MCP tool's inputSchema).
"""

from __future__ import annotations

import functools
import re
from typing import Any, TypeVar

import msgspec

from llama_core.errors import InvalidRequestError, shown
from llama_core.types._base import Base
from llama_core.types.common import URL_PATTERN

T = TypeVar("T", bound=Base)


# --- JSON Schema ------------------------------------------------------------------------------

_REF_PREFIX = "#/$defs/"


def json_schema(request_type: type[Base]) -> dict[str, Any]:
    """A self-contained JSON Schema object for `request_type`: every `$ref` inlined.

    Usable as an MCP tool's inputSchema or an OpenAPI request body. Discriminators keep only
    `propertyName` (their `mapping` would point at the dropped `$defs`).
    """
    (root,), defs = msgspec.json.schema_components([request_type], ref_template=_REF_PREFIX + "{name}")
    return _inline(root, defs, ())


def _inline(node: Any, defs: dict[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs, seen) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    if "$ref" in node:
        name = node["$ref"].removeprefix(_REF_PREFIX)
        if name in seen:  # a recursive type cannot be inlined; none of the request types is one
            raise TypeError(f"{name} refers to itself; its schema cannot be inlined")
        out.update(_inline(defs[name], defs, seen + (name,)))
    for key, value in node.items():
        if key == "$ref":
            continue
        if key == "discriminator":
            out[key] = {"propertyName": value["propertyName"]}
        else:
            out[key] = _inline(value, defs, seen)
    return out


# --- decoding ---------------------------------------------------------------------------------


@functools.cache
def _decoders(request_type: type[Base]) -> tuple[msgspec.json.Decoder, msgspec.json.Decoder]:
    """(flat, wrapped) decoders of `request_type`; wrapped reads the legacy `{"request": {...}}`."""
    envelope = msgspec.defstruct(
        f"{request_type.__name__}Envelope", [("request", request_type)], forbid_unknown_fields=True
    )
    return msgspec.json.Decoder(request_type), msgspec.json.Decoder(envelope)


# msgspec's messages: "<what> - at `$.path`", or "<what>" at the top level.
_AT_PATH = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>.*)`)?$", re.DOTALL)
_NAMED_FIELD = re.compile(r"^Object (?P<kind>contains unknown|missing required) field `(?P<name>.*)`$", re.DOTALL)
_QUOTED = re.compile(r"^(?P<head>Invalid (?:enum )?value )'(?P<value>.*)'$", re.DOTALL)  # the input's own value
_WRAPPER_SIGN = "Object contains unknown field `request`"
_REGEX = re.compile(r"^Expected `str` matching regex '(?P<pattern>.*)'$", re.DOTALL)
# What each pattern of our types asks for, in words: a regex is no message for a user.
_PATTERN_WORDS = {URL_PATTERN: "a URL that starts with http://, https://, file:// or data:"}

# Deeper JSON is refused before it is decoded: msgspec decodes (and skips, and encodes) nested
# values recursively, and ~1,000 levels raise RecursionError, in a server's every transport.
MAX_JSON_DEPTH = 64
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # int8: +1 per opening bracket, -1 per closing
_NOT_BRACKET = bytes(set(range(256)) - set(b"[]{}"))
_PAIR = b"\x01\xff"
_BIG = 1 << 16  # brackets past this many are summed by NumPy rather than peeled level by level


def json_too_deep(data: bytes | memoryview, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text `data` nests arrays and objects more than `limit` deep (strings skipped).

    No decoding and no Python loop over bytes: a text with at most `limit` brackets is shallow at
    once; otherwise its strings are cut out and only brackets kept, then either each of up to
    `limit` passes removes the innermost pairs (one level), or, for many brackets, NumPy's running
    sum gives the depth. Unbalanced brackets (malformed JSON, which the decoder refuses anyway)
    may count either way.
    """
    data = bytes(data)
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    steps = _STRING.sub(b"", data).translate(_STEPS, _NOT_BRACKET)
    if len(steps) > _BIG:
        import numpy as np  # only for a big text full of brackets

        return int(np.cumsum(np.frombuffer(steps, np.int8), dtype=np.int32).max()) > limit
    for _ in range(limit):
        inner = steps.replace(_PAIR, b"")
        if len(inner) == len(steps):
            return False
        steps = inner
    return _PAIR in steps


def decode_request(request_type: type[T], body: bytes | memoryview) -> T:
    """Decode a JSON body into `request_type`, flat or inside the legacy `{"request": ...}` wrapper.

    `body` is any buffer (bytes, memoryview, msgspec.Raw). An empty body means no fields (GET
    routes). Bad JSON, nesting deeper than MAX_JSON_DEPTH, wrong types, missing and unknown fields
    raise InvalidRequestError with `field` set to the path at fault (e.g. `messages[0].content`).
    """
    if json_too_deep(body):
        raise InvalidRequestError(f"Invalid request: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    flat, wrapped = _decoders(request_type)
    try:
        try:
            return flat.decode(body)
        except msgspec.ValidationError as e:
            if str(e) != _WRAPPER_SIGN:
                raise
            return wrapped.decode(body).request
        except msgspec.DecodeError:
            if bytes(body).strip():
                raise
            return flat.decode(b"{}")
    except msgspec.ValidationError as e:  # a subclass of DecodeError: caught first
        raise _invalid(e) from None
    except msgspec.DecodeError as e:
        raise InvalidRequestError(f"Malformed JSON body: {e}") from None
    except UnicodeDecodeError:  # msgspec 0.18's way to say what later ones raise as a DecodeError
        raise InvalidRequestError("Malformed JSON body: Invalid UTF-8 encoded string") from None


def convert(value: Any, target: type[T]) -> T:
    """`msgspec.convert(value, target)` (e.g. a request's free-form `params` dict into a Struct),
    failing as `decode_request` does: InvalidRequestError naming the field at fault."""
    try:
        return msgspec.convert(value, target)
    except msgspec.ValidationError as e:
        raise _invalid(e) from None


def _invalid(error: msgspec.ValidationError) -> InvalidRequestError:
    """Turn msgspec's "... - at `$.x[0].y`" into a one-line message and field="x[0].y".

    A value or field name of the input that msgspec quotes is cut by `shown()`.
    """
    match = _AT_PATH.match(str(error))
    assert match is not None  # the pattern matches any string
    what, path = match["what"], (match["path"] or "").removeprefix(".")
    named = _NAMED_FIELD.match(what)
    if named:
        name = shown(named["name"])
        field = f"{path}.{name}" if path else name
        kind = "Unknown" if named["kind"] == "contains unknown" else "Missing required"
        return InvalidRequestError(f"{kind} field `{field}`", field=field)
    quoted = _QUOTED.match(what)
    if quoted:
        what = f"{quoted['head']}'{shown(quoted['value'])}'"
    regex = _REGEX.match(what)
    if regex:
        what = f"Expected {_PATTERN_WORDS.get(regex['pattern'], 'text of another form')}"
    if path:
        return InvalidRequestError(f"Invalid `{path}`: {what}", field=path)
    return InvalidRequestError(f"Invalid request: {what}")
