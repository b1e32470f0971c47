"""Backoff rules (llama_core.providers.retry) and per-request provider data, as pure functions."""

from __future__ import annotations

import email.utils

import pytest

from llama_core.errors import InvalidRequestError
from llama_core.providers.provider_data import (
    encoded_provider_data,
    parse_provider_data,
    provider_data,
    provider_data_scope,
)
from llama_core.providers.retry import RetryPolicy, backoff_delay, parse_retry_after


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
