"""Serve a stack over HTTP with Hypercorn: addresses to bind, then the app until shutdown.

Binding follows `llama stack run`: localhost unless told; `::` is every interface (IPv6 and, on a
dual-stack system, IPv4 too) unless IPv6 is disabled, then `0.0.0.0`.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from llama_core.errors import ConflictError, InvalidRequestError, LlamaError

DEFAULT_PORT = 5000
LOCALHOST = "127.0.0.1"


def bind_address(host: str | None, port: int, disable_ipv6: bool = False) -> str:
    """Hypercorn's `host:port` for `host` (None: localhost); IPv6 literals in brackets."""
    if host in (None, "", "localhost"):
        host = LOCALHOST
    elif host in ("::", "[::]") and disable_ipv6:
        host = "0.0.0.0"
    host = host.strip("[]")
    try:
        is_v6 = ipaddress.ip_address(host).version == 6
    except ValueError:  # a host name
        is_v6 = False
    return f"[{host}]:{port}" if is_v6 else f"{host}:{port}"


# One line per request, when asked for: Hypercorn's atoms, the path without its query string (which
# may carry what a log must not), and the seconds from the request to the end of its response:
#   127.0.0.1:50312 "POST /inference/chat_completion 1.1" 200 0.412031s
ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(L)ss'


def hypercorn_config(bind: str, *, quiet: bool = False, access_log: bool = False) -> Any:
    """A Hypercorn Config binding `bind`. The access log (ACCESS_LOG_FORMAT, on stdout) is off unless
    `access_log`: a streamed reply is one line when it ends, but a busy server's lines are noise."""
    from hypercorn.config import Config

    config = Config()
    config.bind = [bind]
    config.accesslog = "-" if access_log else None
    config.access_log_format = ACCESS_LOG_FORMAT
    config.errorlog = None if quiet else "-"
    config.keep_alive_timeout = 75  # longer than common client pools keep idle connections
    config.graceful_timeout = 3.0
    return config


async def serve_app(
    app: Any,
    bind: str,
    *,
    shutdown_trigger: Callable[..., Awaitable[Any]] | None = None,
    quiet: bool = False,
    access_log: bool = False,
) -> None:
    """Run `app` on `bind` until `shutdown_trigger` returns (default: SIGINT or SIGTERM); with
    `access_log`, one line per request on stdout (ACCESS_LOG_FORMAT)."""
    from hypercorn.asyncio import serve

    config = hypercorn_config(bind, quiet=quiet, access_log=access_log)
    await serve(app, config, shutdown_trigger=shutdown_trigger)  # type: ignore[arg-type]


# What a failed bind means to the user of `llama stack run`, by errno.
_BIND_ERRORS: dict[int, tuple[type[LlamaError], str, str]] = {
    errno.EADDRINUSE: (ConflictError, "{bind} is already in use by another program; pick another --port.", "port"),
    errno.EADDRNOTAVAIL: (InvalidRequestError, "{host} is not an address of this machine (--host).", "host"),
    errno.EACCES: (InvalidRequestError, "Port {port} needs more privileges than this user has; pick another --port.", "port"),
}


def bound_socket(bind: str) -> socket.socket:
    """A TCP socket bound to `bind` (`host:port`, `[v6]:port`), made before anything says it listens.

    Serve it with `serve_app(app, f"fd://{sock.detach()}")` (Hypercorn listens on it). Raises
    ConflictError (port in use) or InvalidRequestError (an address this machine lacks, a privileged
    port), one line each; the socket is closed then.
    """
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Hypercorn: restart without waiting out TIME_WAIT
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, int(port)))
    except socket.gaierror as e:  # a host name DNS does not know, or no address at all ("300.1.1.1")
        sock.close()
        raise InvalidRequestError(
            f"Cannot bind to {host}: {e.strerror}. Give --host an address of this machine (e.g. 127.0.0.1, or :: for all).",
            field="host",
        ) from None
    except OSError as e:
        sock.close()
        if e.errno not in _BIND_ERRORS:
            raise
        error, message, field = _BIND_ERRORS[e.errno]
        text = message.format(bind=f"{host}:{port}", host=host, port=port)
        raise (error(text, field=field) if issubclass(error, InvalidRequestError) else error(text)) from None
    return sock
