"""Clients of a running stack, as the original's bundled ones: `python -m llama_cli.client.<api> HOST PORT`.

They speak HTTP through llama_core.client.StackClient and print; nothing else.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

from cyclopts import Parameter

CYAN, YELLOW, GREEN, RED, RESET = "\033[36m", "\033[33m", "\033[32m", "\033[31m", "\033[0m"

# Every client's --api-key; `stack_api_key` reads it.
ApiKey = Annotated[
    str | None,
    Parameter(
        allow_leading_hyphen=True,  # `-`: read it from stdin
        help="The server's API key; `-` reads it from stdin's first line; default: $LLAMA_STACK_API_KEY.",
    ),
]


def stack_api_key(value: str | None) -> str | None:
    """The --api-key's value: `-` read from stdin, none given taken from $LLAMA_STACK_API_KEY."""
    from llama_cli.secret_input import secret_option

    return secret_option("--api-key", value, "LLAMA_STACK_API_KEY")


def ask() -> str | None:
    """The user's next line at a `User> ` prompt; None for an empty line or end of input."""
    try:
        return input("User> ").strip() or None
    except EOFError:
        print()
        return None


def colour(text: str, code: str) -> str:
    """`text` in colour `code` on a terminal (unless NO_COLOR), plain elsewhere."""
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        return code + text + RESET
    return text


def host_url(host: str, port: int) -> str:
    """http://HOST:PORT, an IPv6 literal bracketed."""
    bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{bracketed}:{port}"


def run_client(app: Any, argv: Sequence[str] | None) -> int:
    """Run a client's cyclopts `app`; a LlamaError (server down, HTTP error) is one line on stderr
    (exit 2 for a refused request, else 1), a usage error exits 2."""
    from cyclopts import CycloptsError

    from llama_cli.errors import report

    try:
        app(list(sys.argv[1:] if argv is None else argv), exit_on_error=False)
    except CycloptsError:
        return 2
    except (Exception, KeyboardInterrupt) as error:
        return report(error, debug=bool(os.environ.get("LLAMA_DEBUG")))
    return 0
