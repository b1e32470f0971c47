"""Secrets out of text: the one place where what we log, print or answer is cleaned of them.

    redact('bad key fw-123, you sent {"authorization": "Bearer fw-123"}', {"fw-123"})
    -> 'bad key ***, you sent {"authorization": "Bearer ***"}'

Two passes. First the secrets we know (`known_secrets`: the API keys of a provider's config, every
value of the request's provider data; the Authorization we send is one of these), wherever they
appear. Then the shapes a secret we do not know takes: `Bearer <token>`, `Authorization: Basic <v>`,
`api_key=<v>`, `"token": "<v>"`, `x-api-key: <v>` (a name ending in api_key, token, secret, password
or authorization), a URL's `user:password@`, and a URL's query string (signed URLs carry their
signature there).

A known secret shorter than MIN_SECRET characters is not searched for: replacing every "k" of a
message would destroy it, and no real key is that short.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
MIN_SECRET = 6

# Field names that hold a secret (config fields, provider-data keys, --set names).
SECRET_HINTS = ("api_key", "token", "secret", "password")

_BEARER = re.compile(r"(?i)\b(bearer)(\s+)(?!\*\*\*)[A-Za-z0-9._~+/=:-]+")
# Basic only after Authorization: "a basic model" is prose.
_BASIC = re.compile(r"""(?i)(authorization["']?\s*[:=]\s*["']?basic\s+)(?!\*\*\*)[A-Za-z0-9+/=]+""")
# `name: value`, `name=value`, `"name": "value"` where the name holds a hint; the value runs to a
# quote, space, comma, ampersand or brace. A value that is a scheme (Bearer ...) is left to _BEARER.
_PAIR = re.compile(
    r"""(?ix)
    ( [\w-]*(?:api[_-]?key|token|secret|password|authorization)["']?\s*[:=]\s*["']? )
    (?!bearer\b|basic\b|\*\*\*)
    [^\s"',&;}{]+
    """
)
# A URL's user:password@.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")
# A URL's query runs to the next space, less any sentence punctuation that ends the text or precedes the space.
_QUERY = re.compile(r"(https?://[^\s?#]+)\?[^\s#]*?(?=[.,;:)]*(?:\s|$))")


def redact_urls(text: str) -> str:
    """`text` with every URL's query string replaced by `?…` (signatures, policies, tokens)."""
    return _QUERY.sub(r"\1?…", text)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with each of `secrets`, and anything shaped like a secret, replaced by MASK."""
    # Longest first: a secret that contains another is replaced whole.
    for secret in sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _BEARER.sub(rf"\1\2{MASK}", text)
    text = _BASIC.sub(rf"\1{MASK}", text)
    text = _PAIR.sub(rf"\1{MASK}", text)
    text = _USERINFO.sub(rf"\1{MASK}@", text)
    return redact_urls(text)


def is_secret_name(name: str) -> bool:
    """Whether a config field or provider-data key of this name holds a secret."""
    lowered = name.lower()
    return any(hint in lowered for hint in SECRET_HINTS)


def secrets_of(config: Any) -> set[str]:
    """The string values of `config`'s secret fields (a msgspec Struct, a dataclass or a mapping)."""
    if isinstance(config, Mapping):
        items = config.items()
    else:
        fields = getattr(config, "__struct_fields__", None) or getattr(config, "__dataclass_fields__", {})
        items = ((name, getattr(config, name, None)) for name in fields)
    return {value for name, value in items if isinstance(value, str) and value and is_secret_name(name)}


def known_secrets(config: Any = None) -> set[str]:
    """The secrets a provider handling the current request holds: `config`'s secret fields, and
    every string value of the request's provider data (X-LlamaStack-ProviderData)."""
    from llama_core.providers.provider_data import provider_data

    found = secrets_of(config) if config is not None else set()
    found.update(v for v in provider_data().values() if isinstance(v, str) and v)
    return found
