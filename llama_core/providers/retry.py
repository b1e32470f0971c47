"""Retries for remote vendors: a request is sent again only before any part of its answer reached our caller.

A refused or dropped connection, or an answer whose status says "try again" (llama_core.retry:
RETRY_STATUSES), is retried; once a stream has yielded a chunk, a failure is final (the caller
already holds half an answer). How often and how long to wait is the one policy of llama_core.retry.

    policy = RetryPolicy(attempts=3)
    response = await send_with_retries(http, lambda: http.build_request("POST", url, json=body), policy, stream=True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from llama_core.errors import (
    AuthenticationError,
    InvalidRequestError,
    LlamaError,
    NotFoundError,
    ProviderError,
    UnavailableError,
)
from llama_core.retry import RETRY_STATUSES, RetryPolicy, backoff_delay, next_delay, parse_retry_after, retryable_status

if TYPE_CHECKING:
    import httpx

__all__ = ["RETRY_STATUSES", "RetryPolicy", "backoff_delay", "error_for_status", "parse_retry_after", "send_with_retries"]


async def send_with_retries(
    http: httpx.AsyncClient,
    build: Callable[[], httpx.Request],
    policy: RetryPolicy,
    *,
    stream: bool = False,
) -> httpx.Response:
    """Send `build()` until it is answered with a status not worth retrying, or the policy gives up.

    Returns the last response (the caller maps a non-2xx status to an error; a failed response's
    body is read, a 2xx stream is left open for the caller). The last connection error is raised
    as the httpx.TransportError it was.
    """
    import httpx

    failures = 0
    while True:
        try:
            response = await http.send(build(), stream=stream)
        except httpx.TransportError as error:
            failures += 1
            retryable = policy.retry_connect_errors or not isinstance(error, httpx.ConnectError)
            delay = next_delay(policy, failures)
            if delay is None or not retryable:
                raise
            await policy.sleep(delay)
            continue
        if response.status_code < 400:
            return response
        await response.aread()
        await response.aclose()
        if not retryable_status(response.status_code):
            return response
        failures += 1
        delay = next_delay(policy, failures, parse_retry_after(response.headers.get("retry-after")))
        if delay is None:
            return response
        await policy.sleep(delay)


def error_for_status(vendor: str, status: int, message: str, retry_after: str | None = None) -> LlamaError:
    """The error a vendor's failed answer becomes, once retries (if any) ran out; one line for a user."""
    message = " ".join(message.split())[:500] or f"HTTP {status}"
    if status in (401, 403):
        return AuthenticationError(f"{vendor} rejected the API key ({status}): {message}")
    if status == 429:
        wait = parse_retry_after(retry_after)
        hint = f"; it asks to retry after {wait:g} s" if wait is not None else ""
        return UnavailableError(f"{vendor} is rate limiting requests (429){hint}: {message}")
    if status == 404:
        return NotFoundError(f"{vendor}: {message}")
    if status in (400, 413, 422):
        return InvalidRequestError(f"{vendor} refused the request ({status}): {message}")
    return ProviderError(f"{vendor} failed ({status}): {message}")
