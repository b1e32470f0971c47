"""A vendor's failure as our error (llama_core.providers.vendor_errors) and secrets out of text
(llama_core.redact), as pure functions."""

from __future__ import annotations

import logging

import msgspec
import pytest

from llama_core.config import FireworksImplConfig, RemoteStackConfig
from llama_core.errors import (
    AuthenticationError,
    InvalidRequestError,
    LlamaError,
    NotFoundError,
    PayloadTooLargeError,
    ProviderError,
    UnavailableError,
)
from llama_core.providers.provider_data import provider_data_scope
from llama_core.providers.remote import upstream_error
from llama_core.providers.vendor_errors import status_text, stream_failure, vendor_error
from llama_core.redact import known_secrets, redact, redact_urls, secrets_of

REASON = " bad\n request "


@pytest.mark.parametrize(
    ("status", "cls", "ours", "text"),
    [
        (400, InvalidRequestError, 400, "V refused the request (400 Bad Request): bad request"),
        (401, ProviderError, 502, "V answered 401 Unauthorized: check the api_key in the run config"),
        (403, ProviderError, 502, "V answered 403 Forbidden: check the api_key in the run config (it may not have access to this model)"),
        (404, NotFoundError, 404, "V answered 404 Not Found: bad request"),
        (413, PayloadTooLargeError, 413, "V refused the request (413 Request Entity Too Large): bad request"),
        (422, InvalidRequestError, 400, "V refused the request (422 Unprocessable Entity): bad request"),
        (429, UnavailableError, 503, "V is rate limiting requests (429 Too Many Requests); it asks to retry after 2 s: bad request"),
        (500, ProviderError, 502, "V answered 500 Internal Server Error: bad request"),
        (503, ProviderError, 502, "V answered 503 Service Unavailable: bad request"),
        (599, ProviderError, 502, "V answered HTTP 599: bad request"),
    ],
    ids=lambda v: str(v) if isinstance(v, int) and v >= 400 and v != 502 else "",
)
def test_the_status_table(status: int, cls: type, ours: int, text: str) -> None:
    error = vendor_error("V", status, REASON, wait=2.0 if status == 429 else None)
    assert (type(error), error.status, str(error)) == (cls, ours, text)


def test_the_vendors_reason_is_redacted_cut_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    reason = "key sk-live-123456 rejected; " + "x" * 5000
    with caplog.at_level(logging.WARNING, logger="llama_core.providers"):
        error = vendor_error("V", 500, reason, secrets={"sk-live-123456"})
    cleaned = "key *** rejected; " + "x" * 5000
    assert str(error) == "V answered 500 Internal Server Error: " + cleaned[:300]
    (record,) = caplog.records
    assert record.getMessage() == "V answered 500 Internal Server Error: " + cleaned[:2000]
    assert "sk-live" not in caplog.text
    assert str(vendor_error("V", 502, "")) == "V answered 502 Bad Gateway: no reason given"


def test_stream_failure() -> None:
    error = stream_failure("V", "failed during the stream", "oops Authorization: Bearer abc.def", set())
    assert (type(error), str(error)) == (ProviderError, "V failed during the stream: oops Authorization: Bearer ***")


def test_status_text() -> None:
    assert [status_text(s) for s in (401, 429, 599)] == ["401 Unauthorized", "429 Too Many Requests", "HTTP 599"]


@pytest.mark.parametrize(
    ("text", "secrets", "clean"),
    [
        ("bad key fw-123456", {"fw-123456"}, "bad key ***"),
        ('{"authorization": "Bearer fw-123456"}', {"fw-123456"}, '{"authorization": "Bearer ***"}'),
        ("Authorization: Bearer eyJhbGciOi.x-y_z", set(), "Authorization: Bearer ***"),
        ("Authorization: Basic dXNlcjpwYXNz", set(), "Authorization: Basic ***"),
        ("a basic model; max_tokens: 5000 is over 4096 tokens", set(), "a basic model; max_tokens: 5000 is over 4096 tokens"),
        ("url?api_key=abc123&x=1 then", set(), "url?api_key=***&x=1 then"),
        ('{"api_key": "abc123", "n": 1}', set(), '{"api_key": "***", "n": 1}'),
        ("x-api-key: abc123", set(), "x-api-key: ***"),
        ("hf token=hf_abcdef, password: hunter2; secret=s3", set(), "hf token=***, password: ***; secret=***"),
        ("see https://cdn.example/f?Signature=abc&Key=1.", set(), "see https://cdn.example/f?…."),
        ("the key abcdefgh and abcdefghij", {"abcdefgh", "abcdefghij"}, "the key *** and ***"),  # longest first
        ("short k stays", {"k"}, "short k stays"),  # under MIN_SECRET: not searched for
        ("nothing here: 42 tokens", set(), "nothing here: 42 tokens"),
        ("at http://me:pa55@ollama.lan:11434/api failed", set(), "at http://***@ollama.lan:11434/api failed"),
    ],
)
def test_redact(text: str, secrets: set[str], clean: str) -> None:
    assert redact(text, secrets) == clean


def test_redact_urls_keeps_the_path() -> None:
    assert redact_urls("GET https://h/a/b?Policy=x&Signature=y failed") == "GET https://h/a/b?… failed"


def test_known_secrets_are_the_configs_and_the_requests() -> None:
    config = FireworksImplConfig(api_key="fw-config-1")
    assert secrets_of(config) == {"fw-config-1"}
    assert secrets_of({"url": "http://h", "wolfram_api_key": "w-1", "hf_token": ""}) == {"w-1"}
    with provider_data_scope({"together_api_key": "tg-request-1", "n": 3}):
        assert known_secrets(config) == {"fw-config-1", "tg-request-1"}
    assert known_secrets() == set()


@pytest.mark.parametrize(
    ("error", "cls", "status", "text"),
    [
        (AuthenticationError("Missing or wrong API key"), ProviderError, 502,
         "The stack at http://up:5000 answered 401 Unauthorized: check the api_key of the remote provider in the run config."),
        (LlamaError("Internal server error"), ProviderError, 502, "The stack at http://up:5000 failed: Internal server error"),
        (NotFoundError("Unknown model 'x'"), NotFoundError, 404, "Unknown model 'x'"),
        (ProviderError("Fireworks said up-key-123 is bad"), ProviderError, 502, "Fireworks said *** is bad"),
        (UnavailableError("busy"), UnavailableError, 503, "busy"),
    ],
    ids=["401", "500", "404", "502-redacted", "503"],
)
def test_upstream_error(error: LlamaError, cls: type, status: int, text: str) -> None:
    got = upstream_error("http://up:5000", error, secrets_of(RemoteStackConfig(url="http://up:5000", api_key="up-key-123")))
    assert (type(got), got.status, str(got)) == (cls, status, text)


def test_the_remote_config_takes_an_api_key() -> None:
    assert msgspec.convert({"url": "http://up:5000"}, RemoteStackConfig).api_key is None
