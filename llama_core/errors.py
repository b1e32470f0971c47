"""The one exception tree of llama_core. Every wire maps from here, in one place each
(HTTP status in llama_rpc/http.py, JSON-RPC code in llama_rpc/jsonrpc.py, CLI message in llama_cli).

    LlamaError                    anything we raise on purpose; `str(e)` is one line for a user
    ├── InvalidRequestError       400 / -32602: bad input; `field` names the offending path
    │   └── UnsupportedError      400: valid, but this model or provider cannot do it
    ├── AuthenticationError       401: a server's API key is missing or wrong
    ├── NotFoundError             404: unknown model, agent, session, bank, document
    │   └── ModelNotFoundError    404: also lists the closest descriptors
    ├── ConflictError             409: already exists, or in the wrong state
    ├── PayloadTooLargeError      413: a body or prompt over the limit
    ├── NotConfiguredError        501: the API has no provider in this stack
    ├── UnavailableError          503: busy, or the worker group is down
    ├── ProviderError             502: a remote vendor failed (after retries where safe)
    ├── CheckpointError           a model's files are missing, corrupt or mismatched
    └── DownloadError             a download failed (expired URL, 404, network, disk full)

A message that quotes what a client sent quotes it through `shown()`, so a 10 MB model id is not
answered with a 10 MB error.
"""

from __future__ import annotations

import re

SHOWN_CHARS = 200  # an input value quoted in a message is cut to this many characters


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """`value` as text to quote in an error message: whole if at most `limit` characters, else its
    first `limit` characters, an ellipsis and the whole length (`abc… (10000000 characters)`)."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


class LlamaError(Exception):
    """Base of every error we raise on purpose. The message is one line, meant for a user."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def kind(self) -> str:
        """The wire's `type` of this error (`invalid_request`), the same on HTTP and JSON-RPC."""
        return snake_name(type(self).__name__)


def snake_name(class_name: str) -> str:
    """`InvalidRequestError` -> `invalid_request`: an error class's name as a wire `type`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name.removesuffix("Error")).lower()


class InvalidRequestError(LlamaError):
    """The request is malformed or inconsistent; `field` is the dotted path at fault, if known."""

    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnsupportedError(InvalidRequestError):
    """A valid request this model or provider cannot serve (e.g. tool calling on a plain chat model)."""


class AuthenticationError(LlamaError):
    """A server's API key is missing or wrong."""

    status = 401


class NotFoundError(LlamaError):
    """An unknown model, agent, session, memory bank or document."""

    status = 404


class ModelNotFoundError(NotFoundError):
    """An unknown model id; `suggestions` are the closest known descriptors."""

    def __init__(self, model_id: str, suggestions: list[str] | None = None) -> None:
        self.model_id = model_id
        self.suggestions = suggestions or []
        hint = f" Did you mean: {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"Unknown model '{shown(model_id)}'.{hint} See `llama model list --show-all`.")


class ConflictError(LlamaError):
    """It exists already, or is in the wrong state for this request."""

    status = 409


class PayloadTooLargeError(LlamaError):
    """A body or prompt over the limit."""

    status = 413


class NotConfiguredError(LlamaError):
    """The API has no provider in this stack."""

    status = 501


class UnavailableError(LlamaError):
    """Busy, restarting or down; `retry_after` (seconds), when known, is when to try again."""

    status = 503

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderError(LlamaError):
    """A remote vendor failed (after retries where safe)."""

    status = 502


class CheckpointError(LlamaError):
    """A checkpoint's files are missing, corrupt, or do not match the model."""


class DownloadError(LlamaError):
    """A download failed; the message never contains a URL's signature or a token."""


def first_error(group: BaseExceptionGroup, quiet: tuple[type[BaseException], ...] = ()) -> BaseException:
    """The error a task group's failure stands for: the first in `group` (nested groups flattened,
    in order) that is not one of `quiet` (the stops and cancellations it caused), else the first."""
    errors = [first_error(e, quiet) if isinstance(e, BaseExceptionGroup) else e for e in group.exceptions]
    return next((e for e in errors if not isinstance(e, quiet)), errors[0])
