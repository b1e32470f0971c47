"""Cross-origin access for web pages: `llama stack run --cors-origin ORIGIN` (repeatable, or `*`).

With no origin configured nothing changes: no Access-Control-* header is sent, and a preflight is
answered as any OPTIONS request (behind the API key). With origins, quart-cors adds to every answer
to an allowed origin's request, errors included (so a page can read them):

    Access-Control-Allow-Origin     the origin itself, or `*` when any origin is allowed
    Access-Control-Expose-Headers   Retry-After (a 503 says when to come back)
    Vary: Origin                    when it names one origin

and a preflight (OPTIONS with Origin and Access-Control-Request-Method) from an allowed origin is
answered without the API key (a browser never sends credentials on one), with

    Access-Control-Allow-Methods    GET, POST, DELETE, OPTIONS (the verbs the routes use)
    Access-Control-Allow-Headers    the headers the preflight asked for (Authorization, Content-Type,
                                    X-LlamaStack-ProviderData, the openai JS client's x-stainless-*...)
    Access-Control-Max-Age          600 (seconds a browser may reuse the answer)

An allowed origin also passes the Origin check of llama_rpc/origin.py, which refuses other sites'
pages. Credentials mode (cookies) is not offered: the API key travels in the Authorization header.

    origins = cors_origins(["https://app.example.com/", "http://LOCALHOST:3000"])
    # -> ["https://app.example.com", "http://localhost:3000"]
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from llama_core.errors import InvalidRequestError

OPTION = "--cors-origin"
ANY = "*"
METHODS = ("GET", "POST", "DELETE", "OPTIONS")
EXPOSED = ("Retry-After",)  # beyond the headers a page may always read
MAX_AGE_S = 600

# scheme://host[:port], as a browser's Origin header writes it (no path, no user info).
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#@\s]+")


def normal_origin(value: str) -> str:
    """`value` as a browser sends it in Origin (lowercase, no trailing slash), or `*`.

    InvalidRequestError (field `cors_origins`) for anything else, e.g. a host without its scheme.
    """
    origin = value.strip().lower().removesuffix("/")
    if origin == ANY or _ORIGIN.fullmatch(origin):
        return origin
    raise InvalidRequestError(
        f"'{value[:100]}' is not an origin for {OPTION} (cors_origins): give scheme://host[:port] "
        "(e.g. https://app.example.com), or * for any.",
        field="cors_origins",
    )


def cors_origins(values: Iterable[str]) -> list[str]:
    """The configured origins, normalized (see `normal_origin`), each once, in order."""
    return list(dict.fromkeys(normal_origin(v) for v in values))


def is_preflight(method: str, origin: str | None, request_method: str | None) -> bool:
    """Whether a request is a browser's CORS preflight (answered without the API key)."""
    return method == "OPTIONS" and bool(origin) and bool(request_method)


def apply_cors(app: Any, origins: list[str]) -> None:
    """Add the Access-Control-* headers of `origins` (normalized) to `app`'s answers (quart-cors)."""
    import quart_cors

    quart_cors.cors(
        app,
        allow_origin=origins,
        allow_methods=list(METHODS),
        allow_headers=["*"],  # quart-cors answers with the requested names, never a literal `*`
        expose_headers=list(EXPOSED),
        max_age=MAX_AGE_S,
        send_origin_wildcard=ANY in origins,
    )
