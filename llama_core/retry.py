"""The one retry policy: which failures are worth another try, and how long to wait before it.

Used by the remote vendors (providers/retry.py, async, one request per try) and by downloads
(download/fetch.py, worker threads, one ranged GET per try). Each caller decides what is safe to
send again and does its own waiting (an async sleep; a stop flag's wait in a worker thread); this
module only answers "again?" and "after how long?".

- Statuses worth retrying say "not processed, try later": 408 (the server gave up waiting for the
  request), 425 (too early to process it), 429 (rate limited), 500, 502, 503, 504. Any other status
  is final. A transport error (refused, reset, timed out) is retried too.
- The wait is the server's `Retry-After` (seconds or an HTTP date) when it sends one, else
  `base_delay * 2**n` after the (n+1)th failure in a row, capped at `max_delay`. A `Retry-After`
  longer than `max_wait` is not waited for: the caller gives up and reports it.
- `attempts` counts sends in all, the first included; a caller may reset its count of failures in a
  row when a try made progress (a download part that received bytes).

Non-goals: no jitter (one client per provider or download, not a fleet), no circuit breaker. A
library (tenacity, stamina) would wrap the same few lines in callbacks: the download's stop flag,
its reset on progress and the vendors' "return the last answer" are ours either way.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How many times to send a request, and how long to wait between sends (seconds)."""

    attempts: int = 3  # sends in all, the first included
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_wait: float = 30.0  # a longer Retry-After is reported, not waited for
    retry_connect_errors: bool = True  # False for a local server: "not running" should fail at once
    sleep: Callable[[float], Awaitable[None]] = field(default=anyio.sleep, repr=False)  # the async callers' wait


def retryable_status(status: int) -> bool:
    """Whether an HTTP status says "not now" (see the module docstring), so the same request may be sent again."""
    return status in RETRY_STATUSES


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


def next_delay(policy: RetryPolicy, failures: int, retry_after: float | None = None) -> float | None:
    """The wait after `failures` failed sends in a row (1 or more); None: give up (attempts spent, or too long a Retry-After)."""
    if failures >= policy.attempts or (retry_after is not None and retry_after > policy.max_wait):
        return None
    return backoff_delay(policy, failures - 1, retry_after)
