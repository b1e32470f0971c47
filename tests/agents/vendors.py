"""Brave Search and Wolfram Alpha on loopback: a real HTTP server (in a thread) speaking their APIs.

    GET /res/v1/web/search?q=...   header X-Subscription-Token: BRAVE_KEY -> 200 agent_checkpoint.BRAVE_BODY
                                   any other token -> 401 {"error": "bad token <the token sent>"} (as careless vendors echo it)
    GET /v2/query?input=...&appid=WOLFRAM_KEY&format=plaintext&output=json -> 200 WOLFRAM_BODY; another appid -> 401

Every request is recorded (path, query, headers) in `requests`.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .agent_checkpoint import BRAVE_BODY

BRAVE_KEY = "brave-key-0123456789abcdef"
WOLFRAM_KEY = "wolfram-appid-0123456789"
WOLFRAM_BODY: dict[str, Any] = {
    "queryresult": {"success": True, "pods": [
        {"title": "Input", "subpods": [{"title": "", "plaintext": "2 + 2"}]},
        {"title": "Result", "subpods": [{"title": "", "plaintext": "4"}], "scanner": "Simplification"},
    ]}
}  # fmt: skip


@dataclass
class Vendors:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)


@contextlib.contextmanager
def serving_vendors() -> Iterator[Vendors]:
    vendors = Vendors(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            vendors.requests.append({"path": url.path, "query": query, "headers": headers})
            if url.path == "/res/v1/web/search":
                token = headers.get("x-subscription-token")
                return self._answer(200, BRAVE_BODY) if token == BRAVE_KEY else self._answer(401, {"error": f"bad token {token}"})
            if url.path == "/v2/query":
                appid = query.get("appid")
                return self._answer(200, WOLFRAM_BODY) if appid == WOLFRAM_KEY else self._answer(401, {"error": f"bad appid {appid}"})
            return self._answer(404, {"error": "no such API"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    vendors.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="vendors", daemon=True)
    thread.start()
    try:
        yield vendors
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
