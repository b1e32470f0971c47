"""The async side of the worker process group.

`WorkerGroup` starts N processes (N = model-parallel size; see worker.py), talks to rank 0 over a
multiprocessing pipe, and gives each request an `async for` over its tokens. One reader task
dispatches what rank 0 sends to per-request memory streams; one watchdog task notices a dead
process. A death fails every in-flight request with UnavailableError and restarts the group, so
the server never hangs on a lost worker. Works under asyncio and trio (anyio only).

Usage:

    async with WorkerGroup(WorkerSpec(ckpt_dir=...)) as group:
        async with group.generate(prompt_ids, GenParams(max_tokens=64)) as tokens:
            async for out in tokens:
                ...
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import multiprocessing as mp
import os
import secrets
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream, TaskGroup

from llama_core.engine.messages import (
    Cancel,
    Failed,
    GenParams,
    Ready,
    Shutdown,
    Submit,
    TokenOut,
    Tokens,
    WorkerSpec,
)
from llama_core.errors import CheckpointError, InvalidRequestError, LlamaError, UnavailableError

log = logging.getLogger(__name__)

_FAILURES: dict[str, type[LlamaError]] = {
    "invalid": InvalidRequestError,
    "checkpoint": CheckpointError,
    "error": LlamaError,
}

_START_TIMEOUT_S = 600.0  # loading a large checkpoint from a slow disk takes minutes


class TokenStream:
    """`async for` over one sequence's TokenOut; raises the request's error if it failed."""

    def __init__(self, recv: ObjectReceiveStream[TokenOut | Exception]) -> None:
        self._recv = recv
        self.done = False

    def __aiter__(self) -> TokenStream:
        return self

    async def __anext__(self) -> TokenOut:
        if self.done:
            raise StopAsyncIteration
        try:
            item = await self._recv.receive()
        except anyio.EndOfStream:
            self.done = True
            raise StopAsyncIteration from None
        if isinstance(item, Exception):
            self.done = True
            raise item
        self.done = item.stop_reason is not None
        return item


class WorkerGroup:
    """N worker processes behind one async interface; restarts itself when a worker dies."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.info: dict[str, object] = {}
        self._ids = itertools.count(1)
        self._inflight: dict[int, ObjectSendStream[TokenOut | Exception]] = {}
        self._procs: list[Any] = []
        self._conn: Any = None
        self._ready = anyio.Event()
        self._fatal: LlamaError | None = None  # set when a (re)start failed for good
        self._generation = 0  # bumps on every (re)start, so stale watchers stand down
        self._tg: TaskGroup | None = None
        self._send_lock = anyio.Lock()
        self._tmpdir = tempfile.TemporaryDirectory(prefix="llama-workers-")

    async def __aenter__(self) -> WorkerGroup:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        try:
            await self._start()
            with anyio.fail_after(_START_TIMEOUT_S):
                await self._ready.wait()
            if self._fatal is not None:
                raise self._fatal
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the workers and the background tasks. Safe to call twice."""
        self._generation += 1
        if self._fatal is None:
            self._fatal = UnavailableError("The inference engine is shutting down.")
        self._ready.set()  # waiters see the shutdown instead of waiting for a restart
        await anyio.to_thread.run_sync(self._stop_processes)
        for stream in self._inflight.values():
            stream.send_nowait(UnavailableError("The inference engine is shutting down."))
        self._inflight.clear()
        if self._tg is not None:
            tg, self._tg = self._tg, None
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
        self._tmpdir.cleanup()

    @property
    def pids(self) -> list[int]:
        """The worker processes' pids, rank order (for tests and diagnostics)."""
        return [p.pid for p in self._procs]

    @contextlib.asynccontextmanager
    async def generate(self, prompt: list[int], params: GenParams) -> AsyncIterator[TokenStream]:
        """Submit one sequence; the context gives a `TokenStream` of its tokens as rank 0 makes them.

        Leaving the context before the last token (break, cancellation, a client that went away)
        cancels the sequence in the workers.
        """
        await self._wait_ready()
        if params.seed is None:  # every rank must draw the same samples
            params = dataclasses.replace(params, seed=secrets.randbits(63))
        seq_id = next(self._ids)
        send, recv = anyio.create_memory_object_stream[TokenOut | Exception](float("inf"))
        self._inflight[seq_id] = send
        stream = TokenStream(recv)
        try:
            with recv:
                await self._send(Submit(seq_id, prompt, params))
                yield stream
        finally:
            send.close()
            if self._inflight.pop(seq_id, None) is not None and not stream.done:
                with anyio.CancelScope(shield=True):
                    try:
                        await self._send(Cancel(seq_id))
                    except UnavailableError:
                        pass  # the worker is gone; nothing to cancel

    # -- lifecycle -------------------------------------------------------------------------------

    async def _wait_ready(self) -> None:
        if self._fatal is not None:
            raise UnavailableError(f"The inference engine is down: {self._fatal.message}")
        with anyio.fail_after(_START_TIMEOUT_S):
            await self._ready.wait()
        if self._fatal is not None:
            raise UnavailableError(f"The inference engine is down: {self._fatal.message}")

    async def _start(self) -> None:
        assert self._tg is not None
        self._generation += 1
        self._conn = await anyio.to_thread.run_sync(self._spawn)
        self._tg.start_soon(self._reader, self._conn, self._generation)
        self._tg.start_soon(self._watchdog, self._generation)

    def _spawn(self) -> Any:
        from llama_core.engine.worker import worker_main

        ctx = mp.get_context("spawn")
        init_file = os.path.join(self._tmpdir.name, f"rendezvous-{self._generation}")
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        procs = []
        for rank in range(self.spec.world_size):
            conn = child_conn if rank == 0 else None
            p = ctx.Process(
                target=worker_main,
                args=(rank, init_file, conn, self.spec),
                name=f"llama-worker-{rank}",
                daemon=True,
            )
            p.start()
            procs.append(p)
        child_conn.close()  # so the parent sees EOF when rank 0 dies
        self._procs = procs
        return parent_conn

    def _stop_processes(self) -> None:
        conn, procs = self._conn, self._procs
        self._conn, self._procs = None, []
        if conn is not None:
            try:
                conn.send(Shutdown())
            except (OSError, ValueError):
                pass
        for p in procs:
            p.join(timeout=5)
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        if conn is not None:
            conn.close()

    async def _send(self, msg: object) -> None:
        conn = self._conn
        if conn is None:
            raise UnavailableError("The inference engine is restarting; retry the request.")
        async with self._send_lock:
            try:
                # A large prompt can fill the pipe while rank 0 is mid-step: never block the loop.
                await anyio.to_thread.run_sync(conn.send, msg)
            except (OSError, ValueError) as e:
                raise UnavailableError("The inference engine is restarting; retry the request.") from e

    async def _reader(self, conn: Any, generation: int) -> None:
        try:
            while True:
                await anyio.wait_readable(conn.fileno())
                while conn.poll():
                    self._dispatch(conn.recv())
        except (EOFError, OSError, ValueError):
            pass  # rank 0 went away: the watchdog decides what that means
        if generation == self._generation:
            await self._on_death(generation)

    async def _watchdog(self, generation: int) -> None:
        while generation == self._generation:
            await anyio.sleep(0.5)
            if generation == self._generation and any(not p.is_alive() for p in self._procs):
                await self._on_death(generation)
                return

    def _dispatch(self, msg: object) -> None:
        if isinstance(msg, Tokens):
            for out in msg.items:
                stream = self._inflight.get(out.seq_id)
                if stream is not None:
                    stream.send_nowait(out)
                    if out.stop_reason is not None:
                        self._inflight.pop(out.seq_id, None)
        elif isinstance(msg, Ready):
            self.info = msg.info
            self._fatal = None
            self._ready.set()
        elif isinstance(msg, Failed):
            error = _FAILURES.get(msg.kind, LlamaError)(msg.message)
            if msg.seq_id is None:
                self._fatal = error
                self._ready.set()  # wake waiters so they see the failure
            else:
                stream = self._inflight.pop(msg.seq_id, None)
                if stream is not None:
                    stream.send_nowait(error)

    async def _on_death(self, generation: int) -> None:
        if generation != self._generation or self._tg is None:
            return
        self._generation += 1  # stand the old reader/watchdog down before anything awaits
        codes = [p.exitcode for p in self._procs]
        if not self._ready.is_set():
            # It died before it was ever ready: a restart would die the same way, in a loop.
            self._fatal = UnavailableError(f"The inference worker could not start (exit codes {codes}); see its log.")
        elif self._fatal is None:
            self._ready = anyio.Event()  # new requests wait for the restart
            log.warning("inference worker exited (exit codes %s); restarting", codes)
        for stream in self._inflight.values():
            stream.send_nowait(
                UnavailableError("The inference worker stopped unexpectedly; it is restarting. Retry the request.")
            )
        self._inflight.clear()
        was_fatal = self._fatal is not None
        if was_fatal:
            self._ready.set()  # wake the waiters: they see the failure
        await anyio.to_thread.run_sync(self._stop_processes)
        if was_fatal:
            return  # it could not load or start; restarting would fail the same way
        await self._start()
