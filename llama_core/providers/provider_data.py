"""Per-request provider data: the `X-LlamaStack-ProviderData` header, a JSON object of secrets.

A client that has no key in the server's config sends its own, per request, as the original did:

    X-LlamaStack-ProviderData: {"fireworks_api_key": "fw-...", "together_api_key": "..."}

The HTTP server stores the header in a context variable before each request (llama_rpc/http.py);
a provider reads it with `provider_data()` while it handles the request. Library callers use
`with provider_data_scope({...}):` around their calls. Each request (each task) sees its own.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import msgspec

from llama_core.errors import InvalidRequestError

HEADER = "X-LlamaStack-ProviderData"

_current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("provider_data", default=None)


def parse_provider_data(header: str | None) -> dict[str, Any] | None:
    """The header's JSON object; None when absent; InvalidRequestError if it is not a JSON object."""
    if header is None or not header.strip():
        return None
    try:
        data = msgspec.json.decode(header)
    except msgspec.DecodeError:
        data = None
    if not isinstance(data, dict):
        raise InvalidRequestError(
            f'The {HEADER} header must be a JSON object, such as {{"fireworks_api_key": "<key>"}}.', field=HEADER
        )
    return data


def set_provider_data(header: str | None) -> None:
    """Store the header of the request being handled (the HTTP server calls this per request)."""
    _current.set(parse_provider_data(header))


def provider_data() -> dict[str, Any]:
    """The current request's provider data ({} when it sent none)."""
    return _current.get() or {}


@contextlib.contextmanager
def provider_data_scope(data: dict[str, Any] | None) -> Iterator[None]:
    """Calls inside the block see `data` as their provider data."""
    token = _current.set(data)
    try:
        yield
    finally:
        _current.reset(token)


def encoded_provider_data() -> str | None:
    """The current provider data as a header value, to pass on to another stack (None if empty)."""
    data = _current.get()
    return msgspec.json.encode(data).decode() if data else None
