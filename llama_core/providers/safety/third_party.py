"""The `third_party_shield`: a REST endpoint of the caller's choosing judges the messages.

The request's ShieldDefinition carries the endpoint as `execution_config` (a RestAPIExecutionConfig):

    {"url": {"uri": "https://guard.example/check"}, "method": "POST",
     "params": {...}, "headers": {"Authorization": "Bearer ..."}, "body": {"policy": "strict"}}

It is sent as given (method, query params, headers) with a JSON body: the config's `body` fields
and `messages`, the whole conversation in the wire's message shape. The answer must be a 2xx JSON
object with `is_violation` (bool), and optionally `violation_type` and a message for the user
(`violation_return_message`, or `message`).

Every failure is a ProviderError (502) naming the endpoint: a timeout (TIMEOUT_S), a refused
connection, a non-2xx answer (with its reason, cut short), an answer that is not such an object.
The endpoint's URL query, and every header, param and body value, are secrets to us: none of them
reaches a log line or an error (llama_core.redact). A definition without an execution_config, or
whose URL is not http(s), is an InvalidRequestError (400).

Non-goals: no retries (the endpoint may count calls), no streaming.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from llama_core.errors import InvalidRequestError, ProviderError
from llama_core.providers.http_body import read_capped
from llama_core.providers.vendor_errors import status_text, vendor_detail
from llama_core.redact import redact
from llama_core.types import Message
from llama_core.types.safety import RestAPIExecutionConfig, ShieldDefinition, ShieldResponse

if TYPE_CHECKING:
    import httpx

    from llama_core.stack import Stack

TIMEOUT_S = 30.0  # the whole exchange with the endpoint, connect included
MAX_ANSWER_BYTES = 1024 * 1024  # a verdict is a small JSON object; past this the endpoint is not one


class Answer(msgspec.Struct, kw_only=True):
    """What the endpoint answers; other fields are ignored."""

    is_violation: bool
    violation_type: str | None = None
    violation_return_message: str | None = None
    message: str | None = None


_decode_answer = msgspec.json.Decoder(Answer).decode


def secrets_of_endpoint(config: RestAPIExecutionConfig) -> set[str]:
    """Every value the caller configured besides the URL's path: headers, params, body."""
    values = [*(config.headers or {}).values(), *(config.params or {}).values(), *(config.body or {}).values()]
    return {v for v in values if v}


class ThirdPartyShield:
    """shields.Shield for `third_party_shield`; one HTTP client for every endpoint, closed by `aclose`."""

    def __init__(self, config: None, stack: Stack | None, *, timeout: float | None = None) -> None:
        self.timeout = TIMEOUT_S if timeout is None else timeout
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        import httpx

        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def run(self, messages: list[Message], definition: ShieldDefinition) -> ShieldResponse:
        """The endpoint's verdict on `messages`, under `definition.shield_type`.

        Raises InvalidRequestError (field `execution_config...`) for a missing or non-HTTP endpoint,
        ProviderError for a timeout, a connection error, a non-2xx or malformed answer.
        """
        import httpx

        config = definition.execution_config
        if config is None:
            raise InvalidRequestError(
                f"The {definition.shield_type} shield calls a REST endpoint: give its execution_config "
                '({"url": {"uri": "https://..."}, "method": "POST"}).',
                field="execution_config",
            )
        url = config.url.uri
        if not url.startswith(("http://", "https://")):
            raise InvalidRequestError("A third-party shield's URL must be http:// or https://.", field="execution_config.url.uri")
        secrets = secrets_of_endpoint(config)
        endpoint = f"third-party shield at {redact(url, secrets)}"
        where = f"The {endpoint}"
        body: dict[str, Any] = {**(config.body or {}), "messages": msgspec.to_builtins(messages)}
        try:
            request = self._client().build_request(str(config.method), url, params=config.params, headers=config.headers, json=body)
            response = await self._client().send(request, stream=True)
            try:
                content = await read_capped(response, MAX_ANSWER_BYTES)
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            raise ProviderError(f"{where} did not answer within {self.timeout:g} s.") from None
        except httpx.HTTPError as e:
            raise ProviderError(f"Cannot reach the {endpoint}: {redact(str(e) or type(e).__name__, secrets)}") from None
        if content is None:
            raise ProviderError(f"{where} answered more than {MAX_ANSWER_BYTES // 1024} KiB, which is no verdict.")
        if not response.is_success:
            text = content.decode("utf-8", errors="replace")
            detail = vendor_detail(where, f"answered {status_text(response.status_code)}", text, secrets)
            raise ProviderError(f"{where} answered {status_text(response.status_code)}: {detail}")
        try:
            answer = _decode_answer(content)
        except msgspec.DecodeError as e:  # ValidationError included
            raise ProviderError(
                f'{where} answered with something other than a JSON object with "is_violation" (true or false): '
                f"{redact(str(e), secrets)}"
            ) from None
        return ShieldResponse(
            shield_type=definition.shield_type,
            is_violation=answer.is_violation,
            violation_type=answer.violation_type,
            violation_return_message=answer.violation_return_message or answer.message,
        )
