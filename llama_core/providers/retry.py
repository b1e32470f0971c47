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

from llama_core.retry import RETRY_STATUSES, RetryPolicy, backoff_delay, next_delay, parse_retry_after, retryable_status

if TYPE_CHECKING:
    import httpx

__all__ = ["RETRY_STATUSES", "RetryPolicy", "backoff_delay", "parse_retry_after", "send_with_retries"]


async def send_with_retries(
    http: httpx.AsyncClient,
    build: Callable[[], httpx.Request],
    policy: RetryPolicy,
    *,
    stream: bool = False,
) -> httpx.Response:
    """Send `build()` until it is answered with a status not worth retrying, or the policy gives up.

    Returns the last response (the caller maps a non-2xx status to an error with
    llama_core.providers.vendor_errors; a failed response's body is read, a 2xx stream is left
    open for the caller). The last connection error is raised
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
