"""What a vendor's failed answer becomes, once retries (if any) ran out: one table, by status.

    status        error (our status)         message
    400, 422      InvalidRequestError (400)  Fireworks refused the request (400 Bad Request): <vendor's reason>
    401, 403      ProviderError (502)        Fireworks answered 401 Unauthorized: check the api_key in the run config
    404           NotFoundError (404)        Fireworks answered 404 Not Found: <vendor's reason>
    413           PayloadTooLargeError (413) Fireworks refused the request (413 Payload Too Large): <vendor's reason>
    429           UnavailableError (503)     Fireworks is rate limiting requests (429 Too Many Requests); it asks to retry after 3 s: <reason>
    anything else ProviderError (502)        Fireworks answered 500 Internal Server Error: <vendor's reason>

Why: a vendor's 401 is never the client's fault toward us (our 401 says "your key for this server
is wrong"): it is our config's key, or the provider data's, so it is a 502 that says which key to
check, and the vendor's body is not repeated (that is where vendors echo what they were sent). A
400 is usually the client's request, so it stays a 400. The vendor's reason is redacted
(llama_core.redact: the keys this request could have sent, and secret-shaped text), squeezed onto
one line and cut to DETAIL_CHARS. The whole body is logged, redacted the same way.

A stream that fails midway (an error event, a line that is not JSON) is a ProviderError through
`stream_failure`, by the same rules.
"""

from __future__ import annotations

import http
import logging
from collections.abc import Iterable

from llama_core.errors import (
    InvalidRequestError,
    LlamaError,
    NotFoundError,
    PayloadTooLargeError,
    ProviderError,
    UnavailableError,
)
from llama_core.redact import redact

log = logging.getLogger("llama_core.providers")

DETAIL_CHARS = 300
LOGGED_CHARS = 2000

_REFUSED = "{vendor} refused the request ({status}): {detail}"
_ANSWERED = "{vendor} answered {status}: {detail}"
_KEY = "{vendor} answered {status}: check {key}"

# vendor status -> (our error, message template). Missing statuses: (ProviderError, _ANSWERED).
STATUS_TABLE: dict[int, tuple[type[LlamaError], str]] = {
    400: (InvalidRequestError, _REFUSED),
    401: (ProviderError, _KEY),
    403: (ProviderError, _KEY + " (it may not have access to this model)"),
    404: (NotFoundError, _ANSWERED),
    413: (PayloadTooLargeError, _REFUSED),
    422: (InvalidRequestError, _REFUSED),
    429: (UnavailableError, "{vendor} is rate limiting requests ({status}){wait}: {detail}"),
}


def status_text(status: int) -> str:
    """`401 Unauthorized`; a status without a standard phrase as `HTTP 599`."""
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def vendor_detail(vendor: str, what: str, reason: str, secrets: Iterable[str]) -> str:
    """`reason` (text a vendor sent) fit for a user: redacted, on one line, at most DETAIL_CHARS.

    Logs `<vendor> <what>: <reason>` redacted, longer, as a warning first.
    """
    cleaned = redact(reason, secrets)
    log.warning("%s %s: %s", vendor, what, cleaned[:LOGGED_CHARS])
    return " ".join(cleaned.split())[:DETAIL_CHARS] or "no reason given"


def stream_failure(vendor: str, what: str, reason: str, secrets: Iterable[str]) -> ProviderError:
    """A stream that went wrong midway (an error event, a line that is not JSON): always a 502.

    `what` says how: "failed during the stream", "sent a stream event that is not JSON".
    """
    return ProviderError(f"{vendor} {what}: {vendor_detail(vendor, what, reason, secrets)}")


def vendor_error(
    vendor: str,
    status: int,
    reason: str,
    *,
    secrets: Iterable[str] = (),
    key: str = "the api_key in the run config",
    wait: float | None = None,
) -> LlamaError:
    """The error for `vendor`'s answer `status` whose body says `reason` (its error message).

    `secrets` are redacted from `reason` and from the log line; `key` names the credential to check
    on 401/403; `wait` is the vendor's Retry-After in seconds, named on 429.
    """
    detail = vendor_detail(vendor, f"answered {status_text(status)}", reason, secrets)
    cls, template = STATUS_TABLE.get(status, (ProviderError, _ANSWERED))
    hint = f"; it asks to retry after {wait:g} s" if wait is not None else ""
    return cls(template.format(vendor=vendor, status=status_text(status), detail=detail, key=key, wait=hint))
