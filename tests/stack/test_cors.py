"""CORS for web pages (issue 16, item 7): `--cors-origin`, checked with raw HTTP over a real server.

Without it nothing changes: no Access-Control-* header, and a preflight is an OPTIONS request like
any other (behind the API key). With it, the allowed origins' preflights are answered without the
key, and their requests' answers (errors included) carry Access-Control-Allow-Origin.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from rpc.fakes import MODEL, FakeStack
from rpc.server import running_server

from llama_core.errors import InvalidRequestError
from llama_rpc.cors import cors_origins
from llama_rpc.http import create_app

APP = "https://app.example.com"
KEY = "sekret"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
UNAUTHORIZED = {"error": {"message": "Missing or wrong API key: send the header `Authorization: Bearer <key>`.",
                          "type": "authentication", "param": None, "code": 401}}  # fmt: skip


def access_control(response: httpx.Response) -> dict[str, str]:
    """The response's Access-Control-* headers (lowercase names) and Vary."""
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-") or k == "vary"}


@pytest.fixture(scope="module")
def stack() -> FakeStack:
    return FakeStack()


@pytest.fixture(scope="module")
def plain(stack: FakeStack) -> Iterator[str]:
    with running_server(lambda: create_app(stack, api_key=KEY)) as url:
        yield url


@pytest.fixture(scope="module")
def cors(stack: FakeStack) -> Iterator[str]:
    with running_server(lambda: create_app(stack, api_key=KEY, cors=[APP + "/", "http://Tool.Example:8080"])) as url:
        yield url


def test_without_the_option_nothing_changes(plain: str) -> None:
    local = {"Origin": "http://localhost:3000"}  # a page the Origin check lets through
    preflight = httpx.options(plain + "/v1/chat/completions", headers={**local, **PREFLIGHT})
    assert (preflight.status_code, preflight.json(), access_control(preflight)) == (401, UNAUTHORIZED, {})
    keyed = httpx.options(plain + "/v1/chat/completions", headers={**local, **PREFLIGHT, "Authorization": f"Bearer {KEY}"})
    assert (keyed.status_code, set(keyed.headers["allow"].split(", ")), access_control(keyed)) == (200, {"OPTIONS", "POST"}, {})
    reply = httpx.post(plain + "/v1/chat/completions", json=CHAT, headers={**local, "Authorization": f"Bearer {KEY}"})
    assert (reply.status_code, access_control(reply)) == (200, {})
    elsewhere = httpx.options(plain + "/v1/chat/completions", headers={"Origin": APP, **PREFLIGHT})
    assert (elsewhere.status_code, access_control(elsewhere)) == (403, {})


def test_preflight_of_an_allowed_origin_needs_no_key(cors: str) -> None:
    for path in ("/v1/chat/completions", "/v1/openai/v1/completions", "/inference/chat_completion", "/models/list"):
        response = httpx.options(cors + path, headers={"Origin": APP, **PREFLIGHT})
        assert (response.status_code, response.content) == (200, b"")
        assert access_control(response) == {
            "access-control-allow-origin": APP,
            "access-control-expose-headers": "Retry-After",
            "access-control-allow-methods": "GET, POST, DELETE, OPTIONS",
            "access-control-allow-headers": "authorization, content-type",
            "access-control-max-age": "600",
            "vary": "Origin",
        }


def test_answers_to_an_allowed_origin_carry_its_name(cors: str) -> None:
    for origin in (APP, "http://tool.example:8080"):  # both configured, however they were written
        reply = httpx.post(cors + "/v1/chat/completions", json=CHAT, headers={"Origin": origin, "Authorization": f"Bearer {KEY}"})
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] == "You said: hi"
        assert access_control(reply) == {"access-control-allow-origin": origin, "access-control-expose-headers": "Retry-After", "vary": "Origin"}
    stream = httpx.post(cors + "/v1/chat/completions", json={**CHAT, "stream": True}, headers={"Origin": APP, "Authorization": f"Bearer {KEY}"})
    assert stream.text.endswith("data: [DONE]\n\n")
    assert access_control(stream) == {"access-control-allow-origin": APP, "access-control-expose-headers": "Retry-After", "vary": "Origin"}
    refused = httpx.post(cors + "/v1/chat/completions", json=CHAT, headers={"Origin": APP})  # no key: the page may read why
    assert (refused.status_code, refused.json()) == (401, UNAUTHORIZED)
    assert access_control(refused) == {"access-control-allow-origin": APP, "access-control-expose-headers": "Retry-After", "vary": "Origin"}


def test_other_origins_stay_refused(cors: str) -> None:
    for method in ("OPTIONS", "POST"):
        response = httpx.request(method, cors + "/v1/chat/completions", json=CHAT, headers={"Origin": "https://evil.example", **PREFLIGHT})
        assert response.status_code == 403
        assert response.json()["error"]["message"].startswith("Origin 'https://evil.example' is not allowed")
        assert "access-control-allow-origin" not in response.headers
    # Without a preflight's request method, OPTIONS is an ordinary request: behind the key.
    assert httpx.options(cors + "/v1/chat/completions", headers={"Origin": APP}).status_code == 401
    # No Origin, no CORS headers (a script, not a page).
    reply = httpx.post(cors + "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {KEY}"})
    assert (reply.status_code, access_control(reply)) == (200, {"vary": "Origin"})


def test_any_origin(stack: FakeStack) -> None:
    with running_server(lambda: create_app(stack, api_key=KEY, cors=["*"])) as url:
        preflight = httpx.options(url + "/v1/chat/completions", headers={"Origin": "https://anywhere.example", **PREFLIGHT})
        assert (preflight.status_code, preflight.headers["access-control-allow-origin"]) == (200, "*")
        assert preflight.headers["access-control-allow-headers"] == "authorization, content-type"
        reply = httpx.get(url + "/v1/models", headers={"Origin": "https://other.example", "Authorization": f"Bearer {KEY}"})
        assert (reply.status_code, access_control(reply)) == (200, {"access-control-allow-origin": "*", "access-control-expose-headers": "Retry-After"})


@pytest.mark.parametrize("value", ["app.example.com", "https://app.example.com/path", "https://", "ftp:/x", ""])
def test_a_value_that_is_no_origin_is_refused(value: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        cors_origins([value])
    assert caught.value.field == "cors_origins"
    assert caught.value.message == (
        f"'{value}' is not an origin for --cors-origin (cors_origins): give scheme://host[:port] "
        "(e.g. https://app.example.com), or * for any."
    )
    assert cors_origins(["*", "HTTPS://App.Example.com/", "https://app.example.com"]) == ["*", "https://app.example.com"]

