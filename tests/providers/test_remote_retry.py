"""Backoff rules (llama_core.providers.retry) and per-request provider data, as pure functions."""

from __future__ import annotations

import email.utils

import pytest

from llama_core.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    ProviderError,
    UnavailableError,
)
from llama_core.providers.provider_data import (
    encoded_provider_data,
    parse_provider_data,
    provider_data,
    provider_data_scope,
)
from llama_core.providers.retry import RetryPolicy, backoff_delay, error_for_status, parse_retry_after


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("3", 3.0), (" 1.5 ", 1.5), ("-4", 0.0), ("", None), (None, None), ("soon", None)],
    ids=["int", "float", "negative", "empty", "absent", "junk"],
)
def test_retry_after_seconds(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def test_retry_after_http_date() -> None:
    now = 1_727_300_000.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0


def test_backoff_doubles_up_to_the_cap_and_retry_after_wins() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0)
    assert [backoff_delay(policy, n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff_delay(policy, 0, retry_after=7.0) == 7.0


@pytest.mark.parametrize(
    ("status", "cls", "text"),
    [
        (401, AuthenticationError, "V rejected the API key (401): bad key"),
        (403, AuthenticationError, "V rejected the API key (403): bad key"),
        (429, UnavailableError, "V is rate limiting requests (429); it asks to retry after 2 s: bad key"),
        (404, NotFoundError, "V: bad key"),
        (400, InvalidRequestError, "V refused the request (400): bad key"),
        (500, ProviderError, "V failed (500): bad key"),
        (503, ProviderError, "V failed (503): bad key"),
    ],
    ids=lambda v: str(v) if isinstance(v, int) else "",
)
def test_error_for_status(status: int, cls: type, text: str) -> None:
    error = error_for_status("V", status, " bad\n key ", retry_after="2")
    assert (type(error), str(error)) == (cls, text)


def test_provider_data_header() -> None:
    assert parse_provider_data(None) is None
    assert parse_provider_data(' {"together_api_key": "k"} ') == {"together_api_key": "k"}
    for bad in ("[1]", "{nope", '"k"'):
        with pytest.raises(InvalidRequestError, match=r"^The X-LlamaStack-ProviderData header must be a JSON object") as e:
            parse_provider_data(bad)
        assert e.value.field == "X-LlamaStack-ProviderData"


def test_provider_data_scope() -> None:
    assert (provider_data(), encoded_provider_data()) == ({}, None)
    with provider_data_scope({"fireworks_api_key": "k"}):
        assert (provider_data(), encoded_provider_data()) == ({"fireworks_api_key": "k"}, '{"fireworks_api_key":"k"}')
    assert provider_data() == {}
