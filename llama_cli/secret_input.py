"""Secrets given to a command without showing them to `ps`: one scheme for every secret option.

    option value    what happens
    (omitted)       the option's environment variable (HF_TOKEN, LLAMA_META_URL, LLAMA_STACK_API_KEY)
    -               one line read from stdin (`llama download ... --hf-token - < token.txt`)
    anything else   used, with a one-line warning on stderr: other users of the machine see a
                    process's arguments

`llama stack configure --set API.FIELD=-` reads a secret field's value from stdin the same way;
a secret given inline there is warned about too. The warning never repeats the secret.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from llama_core.errors import InvalidRequestError
from llama_core.redact import is_secret_name

STDIN = "-"

ReadLine = Callable[[], str]


def stdin_line() -> str:
    """One line of stdin without its newline ("" at the end of input)."""
    return sys.stdin.readline().rstrip("\r\n")


def warn_visible(given: str, instead: str) -> None:
    """The one-line warning for a secret passed as an argument; `given` names it without its value."""
    print(f"warning: {given} on the command line is visible to other users in `ps`; use {instead} instead", file=sys.stderr)


def read_secret(given: str, field: str, read: ReadLine = stdin_line) -> str:
    """A secret read from stdin for argument `given` (`--api-key -`); InvalidRequestError if none came."""
    value = read().strip()
    if not value:
        raise InvalidRequestError(f"{given} reads the value from stdin, but stdin gave none.", field=field)
    return value


def secret_sets(sets: dict[str, Any], read: ReadLine = stdin_line, path: str = "") -> dict[str, Any]:
    """`--set` values (nested, as llama_cli.configure.parse_sets gives them) with each secret field's
    `-` read from stdin, in order; a secret given inline is warned about."""
    out: dict[str, Any] = {}
    for key, value in sets.items():
        where = f"{path}.{key}" if path else key
        if isinstance(value, dict):
            out[key] = secret_sets(value, read, where)
        elif is_secret_name(key) and value == STDIN:
            out[key] = read_secret(f"--set {where}={STDIN}", where, read)
        else:
            if is_secret_name(key) and value:
                warn_visible(f"--set {where}=…", f"--set {where}={STDIN} (the value on stdin)")
            out[key] = value
    return out


def secret_option(option: str, value: str | None, env: str | None = None, read: ReadLine = stdin_line) -> str | None:
    """The value of secret option `option` (`--hf-token`): as the table above says; None if it is
    neither given nor in `env`."""
    if value == STDIN:
        return read_secret(f"{option} {STDIN}", option.lstrip("-").replace("-", "_"), read)
    if value is not None:
        instead = env or f"{option} {STDIN} (the value on stdin)"
        warn_visible(option, instead)
        return value
    return (os.environ.get(env) or None) if env else None
