"""The one place an exception becomes an HTTP status and a JSON error body.

Statuses come from the error tree (`LlamaError.status`: 400, 401, 404, 409, 413, 501, 502, 503;
anything else 500). Bodies:

    native routes   {"error": {"message": ..., "type": "invalid_request", "status": 400, "field": "messages[0]"}}
    OpenAI routes   {"error": {"message": ..., "type": "invalid_request", "param": "messages[0]", "code": 400}}

An exception we did not raise on purpose is logged with its traceback and answered
"Internal server error" (500): no traceback, path or repr ever reaches a body.
"""

from __future__ import annotations

import logging
from typing import Any

from werkzeug.exceptions import HTTPException

from llama_core.errors import InvalidRequestError, LlamaError, snake_name

log = logging.getLogger("llama_rpc")

INTERNAL = "Internal server error"


def status_of(error: BaseException) -> int:
    """The HTTP status of `error`."""
    if isinstance(error, LlamaError):
        return error.status
    if isinstance(error, HTTPException):  # the framework's own: 404 no route, 405, 413 body too large
        return error.code or 500
    return 500


def describe(error: BaseException) -> tuple[int, str, str, str | None]:
    """(status, type, one-line message, field) of `error`; logs what is unexpected."""
    status = status_of(error)
    if isinstance(error, LlamaError):
        field = error.field if isinstance(error, InvalidRequestError) else None
        return status, error.kind, error.message, field
    if isinstance(error, HTTPException):
        return status, snake_name(type(error).__name__), error.description or error.name, None
    log.error("unexpected error while serving a request", exc_info=error)
    return 500, "internal", INTERNAL, None


def error_body(error: BaseException) -> tuple[int, dict[str, Any]]:
    """(status, body) for a native route or an SSE error event."""
    status, kind, message, field = describe(error)
    detail: dict[str, Any] = {"message": message, "type": kind, "status": status}
    if field is not None:
        detail["field"] = field
    return status, {"error": detail}


def openai_error_body(error: BaseException) -> tuple[int, dict[str, Any]]:
    """(status, body) in OpenAI's shape, which its client turns into APIStatusError subclasses."""
    status, kind, message, field = describe(error)
    return status, {"error": {"message": message, "type": kind, "param": field, "code": status}}
