"""The async side of the worker process group.

`WorkerGroup` starts N processes (N = model-parallel size; see worker.py), talks to rank 0 over a
multiprocessing pipe, and gives each request an `async for` over its tokens. One reader task
dispatches what rank 0 sends to per-request memory streams; one watchdog task notices a dead
process. Works under asyncio and trio (anyio only).

A request the workers cannot serve fails alone (worker.py). A death fails every in-flight request
with UnavailableError and restarts the group after a backoff (0.5 s, doubling to 30 s; back to
0.5 s once a start has stayed up a minute), however often it dies, so the server never hangs on a
lost worker and is never left without one. Only the very first start is fatal when it fails: a
checkpoint that never loaded would fail the same way in a loop. While restarting, requests get
UnavailableError at once ("restarting", with a retry_after), and `state` says where it stands:

    starting -> ready <-> restarting        down: the first start failed, or the group is closed

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
import math
import multiprocessing as mp
import os
import secrets
import tempfile
import time
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
from llama_core.errors import LlamaError, UnavailableError

log = logging.getLogger(__name__)

_LOST = "The inference worker stopped unexpectedly; it is restarting. Retry the request."
_LOST_ACROSS_HOSTS = (
    "The inference engine lost one of its model-parallel ranks (on this host or another); it restarts when "
    "every host's ranks have rejoined. Retry the request."
)
_START_TIMEOUT_S = 600.0  # loading a large checkpoint from a slow disk takes minutes
_BACKOFF_FIRST_S = 0.5  # the wait before the first restart after a crash; doubles on each one after
_BACKOFF_MAX_S = 30.0
_STABLE_S = 60.0  # up this long after a (re)start: the next crash waits _BACKOFF_FIRST_S again


def waiting_for_hosts(spec: WorkerSpec) -> str:
    """The line that says which ranks host 0 waits for, and what starts them."""
    others = spec.world_size - len(spec.local_ranks)
    return (f"waiting for {others} model-parallel rank(s) from {spec.nnodes - 1} other host(s) at {spec.rendezvous}: "
            f"run `llama stack worker CONFIG --node-rank N` on each (N from 1 to {spec.nnodes - 1})")  # fmt: skip


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
        self._ready = anyio.Event()  # set when the first start ended (ready, or failed for good)
        self._fatal: LlamaError | None = None  # set when the first start failed, or on close
        self._state = "starting"
        self._ever_ready = False
        self._ready_at = 0.0  # time.monotonic() of the last Ready
        self._backoff = 0  # crashes since the last stable start: the next wait is 0.5 s * 2**this
        self._restart_at = 0.0  # time.monotonic() when the pending restart spawns the workers
        self.restarts = 0  # crashes survived since the group started
        self._generation = 0  # bumps on every (re)start, so stale watchers stand down
        self._tg: TaskGroup | None = None
        self._background: set[anyio.CancelScope] = set()  # the reader's and watchdog's scopes
        self._send_lock = anyio.Lock()
        self._tmpdir = tempfile.TemporaryDirectory(prefix="llama-workers-")

    async def __aenter__(self) -> WorkerGroup:
        try:
            await self.spawn()
            await self.wait_started()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def spawn(self) -> None:
        """Start the workers without waiting for them to load (`async with` does both).

        Call it from the task that will close the group (its task group is entered here), then
        `wait_started()`, from any task: several groups load their checkpoints at once that way.
        `aclose()` must follow whatever happens.
        """
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        await self._start()

    async def wait_started(self) -> None:
        """Wait until the first start ended; raises its error (the group is then "down") if it failed."""
        with anyio.move_on_after(_START_TIMEOUT_S):
            await self._ready.wait()
        if not self._ready.is_set():
            why = waiting_for_hosts(self.spec) if self.spec.nnodes > 1 else "loading the checkpoint took too long"
            raise UnavailableError(f"The inference workers did not start within {_START_TIMEOUT_S:.0f} s: {why}")
        if self._fatal is not None:
            raise self._fatal

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the workers and the background tasks. Safe to call twice, and finishes even when
        the caller is being cancelled (a server's shutdown): no worker or rendezvous file outlives it."""
        self._generation += 1
        self._state = "down"
        if self._fatal is None:
            self._fatal = UnavailableError("The inference engine is shutting down.")
        self._ready.set()  # waiters see the shutdown instead of waiting for a restart
        try:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._stop_processes)
            for stream in self._inflight.values():
                stream.send_nowait(UnavailableError("The inference engine is shutting down."))
            self._inflight.clear()
            if self._tg is not None:  # entered outside the shield, so left outside it too
                tg, self._tg = self._tg, None
                # Each background task is cancelled in its own scope, not through the task group's:
                # that scope holds the caller's task too (it entered the group), and cancelling the
                # caller mid-shutdown sometimes escaped the group's exit as a CancelledError.
                for scope in list(self._background):
                    scope.cancel()
                await tg.__aexit__(None, None, None)
        finally:
            self._tmpdir.cleanup()

    @property
    def pids(self) -> list[int]:
        """The worker processes' pids, rank order (for tests and diagnostics)."""
        return [p.pid for p in self._procs]

    @property
    def state(self) -> str:
        """"starting", "ready", "restarting" (after a crash, until the new workers are ready) or "down"."""
        return self._state

    def retry_after(self) -> float:
        """Seconds until a restarting group is worth asking again (the backoff left, at least 1)."""
        return max(1.0, self._restart_at - time.monotonic())

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

    def check_serving(self) -> None:
        """UnavailableError (503) at once when the group is restarting or down; nothing otherwise.

        Lets a caller refuse before it commits to an answer (e.g. before a stream's first event).
        """
        if self._state == "restarting":
            wait = math.ceil(self.retry_after())
            hosts = f" (it waits for the ranks on the other {self.spec.nnodes - 1} host(s) to rejoin)" if self.spec.nnodes > 1 else ""
            raise UnavailableError(
                f"The inference engine is restarting after a worker crash{hosts}; retry in {wait} s.", retry_after=wait
            )
        if self._fatal is not None:
            raise UnavailableError(f"The inference engine is down: {self._fatal.message}")

    async def _wait_ready(self) -> None:
        self.check_serving()
        if self._state == "starting":  # only before __aenter__ returned
            with anyio.fail_after(_START_TIMEOUT_S):
                await self._ready.wait()
            self.check_serving()

    async def _start(self) -> None:
        assert self._tg is not None
        self._generation += 1
        self._conn = await anyio.to_thread.run_sync(self._spawn)
        self._tg.start_soon(self._in_background, self._reader, self._conn, self._generation)
        self._tg.start_soon(self._in_background, self._watchdog, self._generation)

    async def _in_background(self, fn: Any, *args: Any) -> None:
        """Run `fn(*args)` in a cancel scope of its own, which aclose cancels."""
        with anyio.CancelScope() as scope:
            self._background.add(scope)
            try:
                await fn(*args)
            finally:
                self._background.discard(scope)

    def _spawn(self) -> Any:
        from llama_core.engine.worker import worker_main

        ctx = mp.get_context("spawn")
        init_file = os.path.join(self._tmpdir.name, f"rendezvous-{self._generation}")
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        procs = []
        for rank in self.spec.local_ranks:  # all of them, unless other hosts run a share (ranks_host.py)
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
        if self.spec.nnodes > 1:
            log.warning("%s", waiting_for_hosts(self.spec))
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
            raise UnavailableError("The inference engine is restarting; retry the request.", retry_after=1)
        async with self._send_lock:
            try:
                # A large prompt can fill the pipe while rank 0 is mid-step: never block the loop.
                await anyio.to_thread.run_sync(conn.send, msg)
            except (OSError, ValueError) as e:
                raise UnavailableError("The inference engine is restarting; retry the request.", retry_after=1) from e

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
            if self._ever_ready:
                log.warning("inference worker restarted (pid %s)", msg.info.get("pid"))
            self._ever_ready = True
            self._state = "ready"
            self._ready_at = time.monotonic()
            self._ready.set()
        elif isinstance(msg, Failed):
            if msg.detail is not None:
                log.error("the inference worker failed on request %s:\n%s", msg.seq_id, msg.detail)
            error = msg.error()
            if msg.seq_id is not None:
                stream = self._inflight.pop(msg.seq_id, None)
                if stream is not None:
                    stream.send_nowait(error)
                return
            # The workers could not load: they exit, and _on_death restarts them unless this was the first start.
            if not self._ever_ready:
                # The first start: the same checkpoint would fail the same way. Not logged: wait_started
                # raises it to the caller, who reports it (the CLI printed it twice).
                self._fatal = error
                self._state = "down"
                self._ready.set()  # wake waiters so they see the failure
            else:
                log.error("inference worker failed to restart: %s", msg.message)

    async def _on_death(self, generation: int) -> None:
        if generation != self._generation or self._tg is None:
            return
        self._generation += 1  # stand the old reader/watchdog down before anything awaits
        codes = [p.exitcode for p in self._procs]
        if not self._ever_ready:
            # It died before it was ever ready: a restart would die the same way, in a loop.
            if self._fatal is None:
                self._fatal = UnavailableError(
                    f"The inference worker could not start (exit codes {codes}); see its log."
                )
            self._state = "down"
            self._ready.set()  # wake the waiters: they see the failure
        else:
            self._state = "restarting"
            self.restarts += 1
            log.warning("inference worker exited (exit codes %s); restarting", codes)
        lost = _LOST_ACROSS_HOSTS if self.spec.nnodes > 1 else _LOST
        for stream in self._inflight.values():
            stream.send_nowait(UnavailableError(lost, retry_after=1))
        self._inflight.clear()
        await anyio.to_thread.run_sync(self._stop_processes)
        if self._state == "down":
            return  # it could not load or start; restarting would fail the same way
        while True:
            await anyio.sleep(self._next_backoff(time.monotonic()))
            if self._state == "down" or self._tg is None:
                return  # closed meanwhile
            try:
                await self._start()
                return
            except Exception:  # could not even spawn (out of processes, memory): wait longer, try again
                log.exception("could not spawn the inference workers; retrying")

    def _next_backoff(self, now: float) -> float:
        """Seconds to wait before a restart at time.monotonic() `now`: doubling per crash, from the
        first again after a stable stretch up."""
        if self._ready_at and now - self._ready_at >= _STABLE_S:
            self._backoff = 0
        self._ready_at = 0.0  # a crash while loading must not count as a stable stretch
        delay = min(_BACKOFF_FIRST_S * 2**self._backoff, _BACKOFF_MAX_S)
        self._backoff += 1
        self._restart_at = now + delay
        return delay
