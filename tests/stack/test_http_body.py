"""Reading request bodies over a real socket: nothing answers before the body is in, and a body
that never arrives is a 408 after BODY_TIMEOUT (llama_rpc/http.py reads it without Quart's get_data)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from rpc.fakes import MODEL, FakeStack
from rpc.server import running_server
from werkzeug.exceptions import RequestTimeout

from llama_rpc.http import create_app

BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi there"}]}).encode()


def make_app() -> Any:
    app = create_app(FakeStack(), api_key="sekret")
    app.config["BODY_TIMEOUT"] = 0.5
    return app


@pytest.fixture(scope="module")
def address() -> Iterator[tuple[str, int]]:
    with running_server(make_app) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def head(method: str, path: str, length: int, key: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: {length}\r\n\r\n".encode()


def answer(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of the next answer on `sock` (Content-Length framed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    header, _, rest = data.partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    length = next(int(v) for k, _, v in (line.partition(": ") for line in lines[1:]) if k.lower() == "content-length")
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(lines[0].split(" ")[1]), json.loads(rest[:length])


@pytest.mark.parametrize(
    ("method", "path", "key", "status"),
    [
        pytest.param("POST", "/inference/chat_completion", None, 401, id="401-no-key"),
        pytest.param("POST", "/no/such/route", "sekret", 404, id="404"),
        pytest.param("GET", "/inference/chat_completion", "sekret", 405, id="405"),
        pytest.param("POST", "/inference/chat_completion", "sekret", 200, id="200"),
    ],
)
def test_answer_waits_for_the_whole_body(address: tuple[str, int], method: str, path: str, key: str | None, status: int) -> None:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(head(method, path, len(BODY), key) + BODY[:10])
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):  # no answer while the body is incomplete
            sock.recv(1)
        sock.settimeout(5)
        sock.sendall(BODY[10:])
        assert answer(sock)[0] == status
        sock.sendall(head("GET", "/health", 0))  # the connection is still usable
        assert answer(sock) == (200, {"status": "OK"})


def test_body_that_never_arrives_is_408(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(head("POST", "/inference/chat_completion", len(BODY), "sekret") + BODY[:10])
        expected = {"message": RequestTimeout.description, "type": "request_timeout", "status": 408}
        assert answer(sock) == (408, {"error": expected})
