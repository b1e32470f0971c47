"""Who may drive the HTTP server from a web page: each request's Host, Origin and body type.

A page on any site can make a browser POST to http://localhost:5000 (a "simple" request: a
text/plain or form body needs no preflight), and DNS rebinding can make the browser take
http://evil.example:5000 for this very server. Three checks, before any route runs, stop both:

    Host          bound to a loopback address (the default), the Host header must name this
                  machine's loopback (localhost, *.localhost, 127.0.0.1, [::1]), the bound address
                  or an allowed host. Bound to any other address (0.0.0.0, ::, a LAN address) every
                  Host is served: the user asked for remote access (as Ollama does when bound so).
    Origin        when a browser sends one, its host must be one of those same names (any port,
                  http or https) or an allowed host, however the server is bound. The schemes of
                  local apps (app://, file://, tauri://, vscode-webview://) are let through, as Ollama does.
    Content-Type  a POST, PUT, PATCH or DELETE must send JSON: application/json or application/*+json,
                  any charset. None at all is taken as JSON (a script's bare request); a form or
                  text/plain body, what a page may send without asking, is refused (415).

`llama stack run --allowed-host NAME` (repeatable) or `allowed_hosts = ["NAME"]` in the run config
adds a host name; `*` allows every Host and Origin (behind a proxy that checks them itself). An
origin given to `--cors-origin` (llama_rpc/cors.py) passes the Origin check too: its pages were let in.

    guard = RequestGuard("127.0.0.1:5000", ["gpu-box.lan"])
    guard.check("POST", "evil.example:5000", "http://evil.example", "text/plain")  # -> Forbidden(...)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from werkzeug.exceptions import Forbidden, HTTPException, UnsupportedMediaType

LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
LOCAL_APP_SCHEMES = frozenset({"app", "file", "tauri", "vscode-webview", "vscode-file"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OPTION = "--allowed-host"
CORS_OPTION = "--cors-origin"
SHOWN = 100  # characters of a refused header repeated in the answer
_CACHE = 1024  # header values remembered per check (a client sends the same few every time)


def host_name(value: str) -> str:
    """The host of a Host header or bind address, lowercased, without port or brackets:
    `[::1]:5000` -> `::1`, `LocalHost.:80` -> `localhost`."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:  # host:port (an IPv6 literal without brackets has several colons)
        value = value.partition(":")[0]
    return value.rstrip(".")


def origin_host(origin: str) -> tuple[str, str]:
    """(scheme, host) of an Origin header: `http://localhost:3000` -> ("http", "localhost"); `null` -> ("", "null")."""
    scheme, sep, rest = origin.strip().lower().partition("://")
    if not sep:
        return "", scheme
    return scheme, host_name(rest.partition("/")[0].rpartition("@")[2])


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or address, no port) is this machine's loopback."""
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_json(content_type: str) -> bool:
    """application/json, application/<x>+json, with any parameters (charset)."""
    kind = content_type.partition(";")[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


class RequestGuard:
    """The three checks for a server bound to `bind` (Hypercorn's `host:port`; None: loopback);
    `cors_origins` (normalized, llama_rpc/cors.py) pass the Origin check, `*` every origin."""

    def __init__(self, bind: str | None = None, allowed_hosts: Iterable[str] = (), cors_origins: Iterable[str] = ()) -> None:
        self.bound = host_name(bind) if bind else "127.0.0.1"
        allowed = {host_name(h) for h in allowed_hosts if h.strip()}
        self.cors = frozenset(cors_origins)
        self.any = "*" in allowed
        self.names = frozenset(allowed | {self.bound})
        self.any_host = self.any or not is_loopback(self.bound)
        self._hosts: dict[str, bool] = {}
        self._origins: dict[str, bool] = {}

    def _name_ok(self, host: str) -> bool:
        return host in self.names or is_loopback(host)

    def host_ok(self, host: str) -> bool:
        ok = self._hosts.get(host)
        if ok is None:
            ok = self.any_host or self._name_ok(host_name(host))
            if len(self._hosts) >= _CACHE:
                self._hosts.clear()
            self._hosts[host] = ok
        return ok

    def origin_ok(self, origin: str) -> bool:
        ok = self._origins.get(origin)
        if ok is None:
            scheme, host = origin_host(origin)
            local = scheme in ("http", "https") and is_loopback(host)
            cors = "*" in self.cors or origin.strip().lower().removesuffix("/") in self.cors
            ok = self.any or host in self.names or local or scheme in LOCAL_APP_SCHEMES or cors
            if len(self._origins) >= _CACHE:
                self._origins.clear()
            self._origins[origin] = ok
        return ok

    def check(self, method: str, host: str | None, origin: str | None, content_type: str | None) -> HTTPException | None:
        """The refusal of a request with these headers (403 or 415, a one-line description), or None."""
        if host and not self.host_ok(host):
            name = host_name(host)[:SHOWN]
            return Forbidden(f"Host '{name}' is not allowed: this server answers to localhost; start it with {OPTION} {name} to allow it.")
        if origin and not self.origin_ok(origin):
            # A page's fetch also needs CORS headers, which only --cors-origin adds: that is the option to name.
            shown = origin.strip()[:SHOWN]
            option = f"{CORS_OPTION} {shown.lower().removesuffix('/')}"
            return Forbidden(f"Origin '{shown}' is not allowed: start the server with {option} to let its pages call it.")
        if content_type and method in BODY_METHODS and not is_json(content_type):
            kind = content_type.partition(";")[0].strip()[:SHOWN]
            return UnsupportedMediaType(
                f"Content-Type {kind} is not accepted: send the body as JSON with `Content-Type: application/json`."
            )
        return None
