"""Who may drive the server from a web page (issue 11, item 12): Host, Origin and Content-Type, as
the pure checks of llama_rpc/origin.py and over a real server, default and --allowed-host."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from rpc.fakes import MODEL, FakeStack
from rpc.server import running_server

from llama_rpc.http import create_app
from llama_rpc.origin import RequestGuard, host_name, is_json, origin_host

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
REFUSED_HOST = "Host 'evil.example' is not allowed: this server answers to localhost; start it with --allowed-host evil.example to allow it."
# A page's fetch needs CORS headers too, which --cors-origin adds and --allowed-host does not: name that.
REFUSED_ORIGIN = "Origin 'http://evil.example' is not allowed: start the server with --cors-origin http://evil.example to let its pages call it."
NOT_JSON = "Content-Type {} is not accepted: send the body as JSON with `Content-Type: application/json`."


@pytest.mark.parametrize(
    ("value", "host"),
    [("127.0.0.1:5000", "127.0.0.1"), ("[::1]:5000", "::1"), ("[::]", "::"), ("LocalHost.", "localhost"), ("::1", "::1"),
     ("evil.example:80", "evil.example")],
)  # fmt: skip
def test_host_name(value: str, host: str) -> None:
    assert host_name(value) == host


def test_origin_host() -> None:
    assert origin_host("http://LOCALHOST:3000") == ("http", "localhost")
    assert origin_host("https://[::1]:8443") == ("https", "::1")
    assert origin_host("null") == ("", "null")


@pytest.mark.parametrize(
    ("content_type", "ok"),
    [("application/json", True), ("Application/JSON; charset=utf-8", True), ("application/merge-patch+json", True),
     ("text/plain", False), ("text/plain;charset=UTF-8", False), ("application/x-www-form-urlencoded", False),
     ("multipart/form-data; boundary=x", False), ("text/json+xml", False)],
)  # fmt: skip
def test_is_json(content_type: str, ok: bool) -> None:
    assert is_json(content_type) is ok


def refusal(guard: RequestGuard, method: str = "POST", host: str | None = "localhost:5000", origin: str | None = None,
            content_type: str | None = "application/json") -> tuple[int, str] | None:  # fmt: skip
    error = guard.check(method, host, origin, content_type)
    return None if error is None else (error.code or 0, error.description or "")


@pytest.mark.parametrize(
    "host",
    ["localhost:5000", "localhost", "127.0.0.1:5000", "[::1]:5000", "app.localhost:5000", "127.0.0.2:5000", None],
)
def test_loopback_hosts_are_served(host: str | None) -> None:
    assert refusal(RequestGuard("127.0.0.1:5000"), host=host) is None


@pytest.mark.parametrize("host", ["evil.example:5000", "evil.example", "192.168.1.9:5000", "0.0.0.0:5000", "localhost.evil.example"])
def test_other_hosts_are_refused_on_a_loopback_bind(host: str) -> None:
    name = host_name(host)
    assert refusal(RequestGuard("127.0.0.1:5000"), host=host) == (
        403, f"Host '{name}' is not allowed: this server answers to localhost; start it with --allowed-host {name} to allow it.")  # fmt: skip


def test_the_issue_example_is_refused_and_named() -> None:
    """No API key, text/plain, Host and Origin evil.example: the Host is what is refused first."""
    got = refusal(RequestGuard(None), host="evil.example", origin="http://evil.example", content_type="text/plain")
    assert got == (403, REFUSED_HOST)


@pytest.mark.parametrize(
    ("origin", "ok"),
    [("http://localhost:3000", True), ("https://127.0.0.1", True), ("http://[::1]:8080", True), ("vscode-webview://abc", True),
     ("http://evil.example", False), ("null", False), ("http://localhost.evil.example", False), ("ftp://localhost", False)],
)  # fmt: skip
def test_origins(origin: str, ok: bool) -> None:
    got = refusal(RequestGuard("127.0.0.1:5000"), origin=origin)
    assert (got is None) is ok
    if not ok:
        assert got is not None and got[0] == 403 and got[1].startswith(f"Origin '{origin}' is not allowed: start the server with --cors-origin ")


def test_allowed_hosts_add_names_to_host_and_origin() -> None:
    guard = RequestGuard("127.0.0.1:5000", ["Evil.Example", "gpu-box.lan", "null"])
    assert refusal(guard, host="evil.example:5000", origin="http://evil.example") is None
    assert refusal(guard, host="gpu-box.lan", origin="https://gpu-box.lan:8443") is None
    assert refusal(guard, origin="null") is None
    assert refusal(guard, host="other.example")[0] == 403  # type: ignore[index]
    anything = RequestGuard("127.0.0.1:5000", ["*"])
    assert refusal(anything, host="a.example", origin="http://b.example") is None


@pytest.mark.parametrize("bind", ["0.0.0.0:5000", "[::]:5000", "192.168.1.9:5000"])
def test_a_public_bind_serves_any_host_but_still_checks_origin(bind: str) -> None:
    guard = RequestGuard(bind)
    assert refusal(guard, host="gpu-box.lan:5000") is None
    assert refusal(guard, host="evil.example", origin="http://evil.example") == (403, REFUSED_ORIGIN)
    assert refusal(guard, host="gpu-box.lan:5000", origin="http://localhost:3000") is None


@pytest.mark.parametrize("method", ["POST", "DELETE", "PUT", "PATCH"])
def test_body_methods_must_send_json(method: str) -> None:
    guard = RequestGuard()
    assert refusal(guard, method, content_type="text/plain;charset=UTF-8") == (415, NOT_JSON.format("text/plain"))
    assert refusal(guard, method, content_type="application/x-www-form-urlencoded") == (
        415, NOT_JSON.format("application/x-www-form-urlencoded"))  # fmt: skip
    assert refusal(guard, method, content_type=None) is None  # a bare request: taken as JSON
    assert refusal(guard, method, content_type="application/json; charset=utf-8") is None


def test_get_ignores_the_content_type() -> None:
    assert refusal(RequestGuard(), "GET", content_type="text/plain") is None


# --- over a real server ---------------------------------------------------------------------------


@contextlib.contextmanager
def served(**options: Any) -> Iterator[str]:
    with running_server(lambda: create_app(FakeStack(), **options)) as url:
        yield url


@pytest.fixture(scope="module")
def default_url() -> Iterator[str]:
    with served() as url:
        yield url


def post(url: str, body: bytes, headers: dict[str, str], path: str = "/inference/chat_completion") -> tuple[int, Any]:
    answer = httpx.post(url + path, content=body, headers=headers, timeout=10)
    return answer.status_code, answer.json()


JSON_BODY = httpx.Request("POST", "http://x", json=CHAT).content


def test_the_issue_example_over_http(default_url: str) -> None:
    headers = {"Host": "evil.example", "Origin": "http://evil.example", "Content-Type": "text/plain"}
    assert post(default_url, JSON_BODY, headers) == (403, {"error": {"message": REFUSED_HOST, "type": "forbidden", "status": 403}})


def test_dns_rebinding_with_a_json_body_is_refused(default_url: str) -> None:
    headers = {"Host": "evil.example:5000", "Content-Type": "application/json"}
    assert post(default_url, JSON_BODY, headers)[0] == 403


def test_a_cross_site_page_is_refused_by_origin(default_url: str) -> None:
    headers = {"Origin": "http://evil.example", "Content-Type": "text/plain"}  # the Host is ours: the browser's real target
    assert post(default_url, JSON_BODY, headers) == (403, {"error": {"message": REFUSED_ORIGIN, "type": "forbidden", "status": 403}})
    status, body = post(default_url, JSON_BODY, {"Origin": "http://evil.example", "Content-Type": "application/json"}, "/v1/chat/completions")
    assert (status, body["error"]["code"], body["error"]["type"]) == (403, 403, "forbidden")


@pytest.mark.parametrize(
    ("content_type", "status"),
    [("text/plain", 415), ("application/x-www-form-urlencoded", 415), ("application/json", 200),
     ("application/json; charset=utf-8", 200), (None, 200)],
    ids=["text-plain", "curl-d-form", "json", "json-charset", "none"],
)  # fmt: skip
def test_content_type_from_localhost(default_url: str, content_type: str | None, status: int) -> None:
    got = post(default_url, JSON_BODY, {"Content-Type": content_type} if content_type else {})
    assert got[0] == status
    if status == 415:
        assert got[1] == {"error": {"message": NOT_JSON.format(content_type), "type": "unsupported_media_type", "status": 415}}
    else:
        assert got[1]["completion_message"]["content"] == "You said: hi"


def test_the_readmes_curl_example_works(default_url: str) -> None:
    """curl -s localhost:5000/... -H 'Content-Type: application/json' -d '{...}': curl's own headers."""
    headers = {"Host": "localhost:5000", "User-Agent": "curl/8.5.0", "Accept": "*/*", "Content-Type": "application/json"}
    assert post(default_url, JSON_BODY, headers)[0] == 200


def test_allowed_host_and_a_public_bind_over_http() -> None:
    with served(allowed_hosts=["evil.example"]) as url:
        assert post(url, JSON_BODY, {"Host": "evil.example", "Origin": "http://evil.example", "Content-Type": "application/json"})[0] == 200
        assert post(url, JSON_BODY, {"Host": "other.example", "Content-Type": "application/json"})[0] == 403
    with served(bind="0.0.0.0:5000") as url:  # served on loopback here, but configured as bound to every interface
        assert post(url, JSON_BODY, {"Host": "gpu-box.lan:5000", "Content-Type": "application/json"})[0] == 200
        assert post(url, JSON_BODY, {"Host": "gpu-box.lan:5000", "Origin": "http://evil.example"})[0] == 403


def test_health_and_gets_follow_the_host_rule(default_url: str) -> None:
    assert httpx.get(default_url + "/health", timeout=10).status_code == 200
    assert httpx.get(default_url + "/health", headers={"Host": "evil.example"}, timeout=10).status_code == 403
    assert httpx.get(default_url + "/models/list", headers={"Content-Type": "text/plain"}, timeout=10).status_code == 200
