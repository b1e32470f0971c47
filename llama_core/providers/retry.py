"""Backoff rules for remote vendors: when a failed request may be sent again, and how long to wait.

A request is retried only before any part of its answer reached our caller: a refused or dropped
connection, or an answer whose status says "try again" (429, 500, 502, 503, 504), is retried; once
a stream has yielded a chunk, a failure is final (the caller already holds half an answer).

    policy = RetryPolicy(attempts=3)
    response = await send_with_retries(http, lambda: http.build_request("POST", url, json=body), policy, stream=True)

The wait is the vendor's `Retry-After` (seconds or an HTTP date) when it sends one, else
`base_delay * 2**n`, capped at `max_delay`. A `Retry-After` longer than `max_wait` is not waited
for: the answer is returned as is, for the caller to turn into a clear error.

Non-goals: no jitter (one client per provider, not a fleet), no circuit breaker.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    import httpx

# Statuses that mean "not now": rate limited, or the vendor's side failed.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How many times to send a request, and how long to wait between sends (seconds)."""

    attempts: int = 3  # sends in all, the first included
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_wait: float = 30.0  # a longer Retry-After is reported, not waited for
    retry_connect_errors: bool = True  # False for a local server: "not running" should fail at once
    sleep: Callable[[float], Awaitable[None]] = field(default=anyio.sleep, repr=False)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(policy: RetryPolicy, attempt: int, retry_after: float | None = None) -> float:
    """The wait before send number `attempt + 1` (attempt counts from 0): Retry-After, else exponential."""
    if retry_after is not None:
        return retry_after
    return min(policy.max_delay, policy.base_delay * 2**attempt)


async def send_with_retries(
    http: httpx.AsyncClient,
    build: Callable[[], httpx.Request],
    policy: RetryPolicy,
    *,
    stream: bool = False,
) -> httpx.Response:
    """Send `build()` until it is answered with a status not worth retrying, or attempts run out.

    Returns the last response (the caller maps a non-2xx status to an error with
    llama_core.providers.vendor_errors; a failed response's body is read, a 2xx stream is left
    open for the caller). The last connection error is raised
    as the httpx.TransportError it was.
    """
    import httpx

    for attempt in range(policy.attempts):
        last = attempt == policy.attempts - 1
        try:
            response = await http.send(build(), stream=stream)
        except httpx.TransportError as error:
            retryable = policy.retry_connect_errors or not isinstance(error, httpx.ConnectError)
            if last or not retryable:
                raise
            await policy.sleep(backoff_delay(policy, attempt))
            continue
        if response.status_code < 400:
            return response
        await response.aread()
        await response.aclose()
        if last or response.status_code not in RETRY_STATUSES:
            return response
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if retry_after is not None and retry_after > policy.max_wait:
            return response
        await policy.sleep(backoff_delay(policy, attempt, retry_after))
    raise AssertionError("unreachable: the last attempt returns or raises")
