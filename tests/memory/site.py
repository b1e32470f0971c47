"""A loopback web server of canned pages, for documents fetched by URL.

    with Site() as site:
        site.add("/a.txt", b"hello", content_type="text/plain; charset=utf-8")
        site.url("/a.txt")  ->  "http://127.0.0.1:PORT/a.txt"

A page answers its status, headers and body; `chunked=True` sends the body without Content-Length,
in pieces; `stall=True` sends the headers and a first piece, then nothing until the site closes.
Requests are recorded as paths (with their query strings) in `requests`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Page:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False
    stall: bool = False


class Site:
    def __init__(self) -> None:
        self.pages: dict[str, Page] = {}
        self.requests: list[str] = []
        self.closing = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                site.requests.append(self.path)
                page = site.pages.get(self.path.split("?")[0], Page(b"no such page", 404))
                self.send_response(page.status)
                for name, value in page.headers.items():
                    self.send_header(name, value)
                if page.chunked or page.stall:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(len(page.body)))
                self.end_headers()
                if not (page.chunked or page.stall):
                    self.wfile.write(page.body)
                    return
                step = max(1, len(page.body) // 8)
                for start in range(0, len(page.body), step):
                    piece = page.body[start : start + step]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                    if page.stall:
                        site.closing.wait(60)
                        return
                self.wfile.write(b"0\r\n\r\n")

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that hangs up early (as one past its size limit does) is no news here

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def add(self, path: str, body: bytes = b"", content_type: str | None = None, **kwargs: object) -> str:
        """Serve `body` at `path`; returns its URL."""
        page = Page(body=body, **kwargs)  # type: ignore[arg-type]
        if content_type is not None:
            page.headers["Content-Type"] = content_type
        self.pages[path] = page
        return self.url(path)

    def url(self, path: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def __enter__(self) -> Site:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()
