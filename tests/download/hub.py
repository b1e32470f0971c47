"""A loopback stand-in for the Hugging Face Hub: the endpoints huggingface_hub's snapshot_download uses.

    GET  /api/models/<repo>[/revision/<rev>]           model info: sha (the commit), siblings
    GET  /api/models/<repo>/tree/<rev>[?recursive=..]  file list: path, size, oid, lfs.sha256
    HEAD /<repo>/resolve/<rev>/<path>                  X-Repo-Commit, ETag, Content-Length
    GET  /<repo>/resolve/<rev>/<path>                  the bytes; Range honoured

`repos` maps a repo id to {path: bytes}; files of 1 KiB and more are LFS files (their ETag and
lfs.oid are the sha256). `gated` repos answer 403 with X-Error-Code: GatedRepo unless the request
carries `Authorization: Bearer <token>`; unknown repos answer 404 with X-Error-Code: RepoNotFound.
Requests are recorded as (method, path, Authorization header) in `requests`.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_MIN = 1024


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, bytes]], gated: dict[str, str] | None = None) -> None:
        self.repos = repos
        self.gated = gated or {}  # repo -> the token that opens it
        self.requests: list[tuple[str, str, str | None]] = []
        self.odd = False  # True: the model info is JSON of another shape (a proxy's page, a newer API)
        hub = self

        class Handler(_Handler):
            server_hub = hub

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_hub: FakeHub

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: object) -> None:
        self._send(200, json.dumps(data).encode())

    def _repo(self, repo: str) -> dict[str, bytes] | None:
        """The repo's files, or None after answering its error."""
        hub = self.server_hub
        if repo not in hub.repos:
            self._send(404, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
            return None
        token = hub.gated.get(repo)
        if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
            message = "Access to model is restricted. You must have access to it and be authenticated to access it."
            self._send(403, b'{"error":"gated"}', {"X-Error-Code": "GatedRepo", "X-Error-Message": message})
            return None
        return hub.repos[repo]

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        self.server_hub.requests.append((self.command, path, self.headers.get("Authorization")))
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?", path):
            files = self._repo(m.group(1))
            if files is not None:
                self._json([_tree_entry(p, data) for p, data in sorted(files.items())])
        elif m := re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?", path):
            files = self._repo(m.group(1))
            if files is not None and self.server_hub.odd:
                self._json({"model": {"name": m.group(1)}})
            elif files is not None:
                siblings = [{"rfilename": p} for p in sorted(files)]
                self._json({"id": m.group(1), "modelId": m.group(1), "sha": COMMIT, "private": False, "siblings": siblings})
        elif m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
            files = self._repo(m.group(1))
            if files is not None:
                self._file(files, m.group(3))
        else:
            self._send(404, b'{"error":"no such route"}')

    def _file(self, files: dict[str, bytes], name: str) -> None:
        if name not in files:
            self._send(404, b'{"error":"Entry not found"}', {"X-Error-Code": "EntryNotFound"})
            return
        data = files[name]
        etag = hashlib.sha256(data).hexdigest() if len(data) >= LFS_MIN else _git_oid(data)
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        status = 200
        if m := re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or ""):
            start = int(m.group(1))
            end = int(m.group(2)) + 1 if m.group(2) else len(data)
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
            data, status = data[start:end], 206
        self._send(status, data, headers, "application/octet-stream")


def _tree_entry(path: str, data: bytes) -> dict[str, object]:
    entry: dict[str, object] = {"type": "file", "oid": _git_oid(data), "size": len(data), "path": path}
    if len(data) >= LFS_MIN:
        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
    return entry
