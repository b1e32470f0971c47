"""A loopback stand-in for Meta's download CDN (CloudFront with signed URLs).

It serves `root/<folder>/<file>` at `/<folder>/<file>?Policy=..&Signature=..&Key-Pair-Id=..` and behaves
as the real one does where a client can tell:

- the query must carry a policy signed with the server's key (else 403), whose `AWS:EpochTime` has not
  passed (else 403, as does `expire()`);
- HEAD is refused (403), so sizes come from a ranged GET's Content-Range;
- `Range: bytes=a-b` / `bytes=a-` answer 206 (416 past the end); no Range (or `ranges = False`) answers 200;
- `cut(path, at)` closes the connection once, after byte `at` of that file has been sent;
- `refuse(path, status, retry_after)` answers that status (500, 429...) once, with Retry-After if given;
- a missing file is 404. Bodies go out with os.sendfile, so the bench measures the client;
  `rate` caps each response's bytes/s, as a CDN edge caps a connection.

Requests are recorded as (method, path, Range header) in `requests`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

DENIED = b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access denied</Message></Error>'
NOT_FOUND = b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>'


def _b64(data: bytes) -> str:  # CloudFront's URL-safe base64
    return base64.b64encode(data).decode().translate(str.maketrans("+=/", "-_~"))


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.translate(str.maketrans("-_~", "+=/")))


class FakeCDN:
    def __init__(self, root: Path, key: bytes = b"fake-cloudfront-key", key_pair_id: str = "K2FAKEKEYPAIR") -> None:
        self.root = root
        self.key = key
        self.key_pair_id = key_pair_id
        self.requests: list[tuple[str, str, str | None]] = []
        self.cuts: dict[str, list[int]] = {}
        self.expired = False
        self.ranges = True  # False: ignore Range and always answer 200 with the whole file
        self.rate: float | None = None  # bytes/s per response, like a CDN edge's per-connection cap
        self.refusals: dict[str, list[tuple[int, str | None]]] = {}
        self.lock = threading.Lock()
        cdn = self

        class Handler(_Handler):
            server_cdn = cdn

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def signed_url(self, expires_in: float = 24 * 3600) -> str:
        """The e-mail's URL: `<base>/*?Policy=..&Signature=..&Key-Pair-Id=..`, valid for `expires_in` seconds."""
        policy = {"Statement": [{"Resource": f"{self.base}/*", "Condition": {"DateLessThan": {"AWS:EpochTime": int(time.time() + expires_in)}}}]}
        raw = json.dumps(policy, separators=(",", ":")).encode()
        signature = hmac.new(self.key, raw, hashlib.sha256).digest()
        return f"{self.base}/*?Policy={_b64(raw)}&Signature={_b64(signature)}&Key-Pair-Id={self.key_pair_id}"

    def cut(self, path: str, at: int) -> None:
        """Drop the connection once, right after byte `at` of `/path` went out."""
        self.cuts.setdefault(path, []).append(at)

    def refuse(self, path: str, status: int, retry_after: str | None = None) -> None:
        """Answer the next GET of `/path` with `status` (and `Retry-After: retry_after`), as an edge under load does."""
        self.refusals.setdefault(path, []).append((status, retry_after))

    def expire(self) -> None:
        """From now on every signature is refused, as when the 24 hours are over."""
        self.expired = True

    def authorized(self, query: str) -> bool:
        q = parse_qs(query)
        try:
            raw = _unb64(q["Policy"][0])
            signature = _unb64(q["Signature"][0])
            policy = json.loads(raw)
            statement = policy["Statement"][0]
            expires = statement["Condition"]["DateLessThan"]["AWS:EpochTime"]
        except (KeyError, IndexError, ValueError, TypeError):
            return False
        good = hmac.compare_digest(signature, hmac.new(self.key, raw, hashlib.sha256).digest())
        return good and q.get("Key-Pair-Id") == [self.key_pair_id] and time.time() < expires and not self.expired

    def __enter__(self) -> FakeCDN:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hang up mid-response (cancelled parts, closed pools): not news


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_cdn: FakeCDN

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _error(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.server_cdn.requests.append(("HEAD", urlsplit(self.path).path, self.headers.get("Range")))
        self._error(403, DENIED)  # CloudFront refuses HEAD on these distributions

    def do_GET(self) -> None:
        cdn = self.server_cdn
        url = urlsplit(self.path)
        cdn.requests.append(("GET", url.path, self.headers.get("Range")))
        if not cdn.authorized(url.query):
            return self._error(403, DENIED)
        with cdn.lock:
            refusal = cdn.refusals.get(url.path, []) and cdn.refusals[url.path].pop(0)
        if refusal:
            status, retry_after = refusal
            self.send_response(status)
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = (cdn.root / url.path.lstrip("/")).resolve()
        if not path.is_file() or cdn.root.resolve() not in path.parents:
            return self._error(404, NOT_FOUND)
        size = path.stat().st_size
        start, end = 0, size  # [start, end)
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "") if cdn.ranges else None
        if match:
            start = int(match.group(1))
            end = min(size, int(match.group(2)) + 1) if match.group(2) else size
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "binary/octet-stream")
        self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        stop = end
        with cdn.lock:
            for at in cdn.cuts.get(url.path, []):
                if start <= at < end:
                    cdn.cuts[url.path].remove(at)
                    stop = at
                    break
        with path.open("rb") as f:
            sent, began = start, time.monotonic()
            while sent < stop:
                count = stop - sent if cdn.rate is None else min(stop - sent, 1 << 18)
                sent += os.sendfile(self.connection.fileno(), f.fileno(), sent, count)
                if cdn.rate is not None:  # pace: never ahead of rate * elapsed
                    time.sleep(max(0.0, (sent - start) / cdn.rate - (time.monotonic() - began)))
        if stop < end:  # the cut: the client has a Content-Length it will never get
            self.close_connection = True
            self.connection.shutdown(2)
