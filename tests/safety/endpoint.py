"""A third-party shield endpoint on loopback: a real HTTP server (in a thread) that answers by path.

    /violation   200 {"is_violation": true, "violation_type": "toxicity", "violation_return_message": "Not here."}
    /ok          200 {"is_violation": false}
    /message     200 {"is_violation": true, "message": "Said with `message`."}
    /barrier     200 {"is_violation": false}, once two requests are in at the same time (else 500)
    /slow        200 {"is_violation": false} after SLOW_S seconds
    /error       500, its body echoing the request's Authorization header (as careless servers do)
    /not-json    200 "hello"
    /huge        200, a verdict whose message is 2 MiB long
    anything else 404

Every request is recorded (method, path, query, headers, JSON body) in `requests`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SLOW_S = 3.0


@dataclass
class Endpoint:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    barrier: threading.Barrier = field(default_factory=lambda: threading.Barrier(2, timeout=20))


ANSWERS: dict[str, dict[str, Any]] = {
    "/violation": {"is_violation": True, "violation_type": "toxicity", "violation_return_message": "Not here."},
    "/ok": {"is_violation": False},
    "/message": {"is_violation": True, "message": "Said with `message`."},
    "/barrier": {"is_violation": False},
    "/slow": {"is_violation": False},
}


@contextlib.contextmanager
def serving_endpoint() -> Iterator[Endpoint]:
    """The endpoint on a free loopback port, for the `with` block."""
    endpoint = Endpoint(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _answer(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            endpoint.requests.append({
                "method": self.command, "path": url.path, "query": parse_qs(url.query),
                "headers": {k.lower(): v for k, v in self.headers.items()}, "json": json.loads(raw) if raw else None,
            })  # fmt: skip
            if url.path == "/barrier":
                try:
                    endpoint.barrier.wait()
                except threading.BrokenBarrierError:
                    return self._answer(500, b"alone at the barrier")
            if url.path == "/slow":
                time.sleep(SLOW_S)
            if url.path in ANSWERS:
                return self._answer(200, json.dumps(ANSWERS[url.path]).encode())
            if url.path == "/error":
                return self._answer(500, f"exploded; you sent Authorization {self.headers.get('Authorization')}".encode(), "text/plain")
            if url.path == "/not-json":
                return self._answer(200, b"hello", "text/plain")
            if url.path == "/huge":
                return self._answer(200, json.dumps({"is_violation": True, "message": "A" * (2 << 20)}).encode())
            return self._answer(404, b"no such shield", "text/plain")

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that gave up on /slow: the late answer's broken pipe is expected

    server = Server(("127.0.0.1", 0), Handler)
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="shield-endpoint", daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
