"""Reading request bodies over a real socket: nothing answers before the body is in, a body that
never arrives is a 408 after BODY_TIMEOUT (llama_rpc/http.py reads it without Quart's get_data),
and a client that writes a body over the limit before reading reads the 413."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from rpc.fakes import MODEL, FakeStack
from rpc.server import running_server
from werkzeug.exceptions import RequestTimeout

from llama_rpc.http import DRAIN_FACTOR, create_app

BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi there"}]}).encode()
LIMIT = 1024 * 1024  # this server's body limit (bigger than what the kernel buffers, to matter)
HEALTHY = {"status": "OK", "apis": {"inference": {"status": "ok"}, "models": {"status": "ok"}}}  # GET /health of the fake stack


def make_app() -> Any:
    app = create_app(FakeStack(), api_key="sekret", max_body_bytes=LIMIT)
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


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], dict[str, Any]]:
    """(status, headers, JSON body) of the next answer on `sock` (Content-Length framed)."""

    def more() -> bytes:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data

    data = b""
    while b"\r\n\r\n" not in data:
        data += more()
    header, _, rest = data.partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:])}
    length = int(headers["content-length"])
    while len(rest) < length:
        rest += more()
    return int(lines[0].split(" ")[1]), headers, json.loads(rest[:length])


def answer(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of the next answer on `sock`."""
    status, _, body = read_answer(sock)
    return status, body


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
        assert answer(sock) == (200, HEALTHY)


def test_body_that_never_arrives_is_408(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(head("POST", "/inference/chat_completion", len(BODY), "sekret") + BODY[:10])
        expected = {"message": RequestTimeout.description, "type": "request_timeout", "status": 408}
        assert answer(sock) == (408, {"error": expected})


TOO_LARGE = {"message": f"The request body is larger than this server's limit of {LIMIT // 2**20} MiB.",
             "type": "payload_too_large"}


@pytest.mark.parametrize(
    ("path", "key", "error"),
    [
        pytest.param("/inference/chat_completion", "sekret", {**TOO_LARGE, "status": 413}, id="native"),
        pytest.param("/v1/chat/completions", "sekret", {**TOO_LARGE, "param": None, "code": 413}, id="v1"),
        pytest.param("/inference/chat_completion", None, {**TOO_LARGE, "status": 413}, id="no-key"),
        pytest.param("/no/such/route", "sekret", {**TOO_LARGE, "status": 413}, id="no-route"),
    ],
)
def test_a_client_that_writes_a_body_over_the_limit_reads_the_413(
    address: tuple[str, int], path: str, key: str | None, error: dict[str, Any]
) -> None:
    body = b"x" * (3 * LIMIT)
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(head("POST", path, len(body), key) + body)  # all of it before reading, as most clients do
        status, headers, answered = read_answer(sock)
        assert (status, answered, "connection" in headers) == (413, {"error": error}, False)
        sock.sendall(head("GET", "/health", 0))  # the connection is still usable
        assert answer(sock) == (200, HEALTHY)


def test_a_chunked_body_over_the_limit_reads_the_413(address: tuple[str, int]) -> None:
    chunk = b"x" * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3 * LIMIT // len(chunk))) + b"0\r\n\r\n"
    start = b"POST /inference/chat_completion HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekret\r\nTransfer-Encoding: chunked\r\n\r\n"
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(start + chunks)
        assert answer(sock) == (413, {"error": {**TOO_LARGE, "status": 413}})
        sock.sendall(head("GET", "/health", 0))
        assert answer(sock) == (200, HEALTHY)


def test_a_body_past_what_is_drained_is_refused_at_once_and_the_connection_closed(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(head("POST", "/inference/chat_completion", DRAIN_FACTOR * LIMIT + 1, "sekret"))  # no body yet
        status, headers, answered = read_answer(sock)
        assert (status, answered, headers["connection"]) == (413, {"error": {**TOO_LARGE, "status": 413}}, "close")
        assert sock.recv(1) == b""
