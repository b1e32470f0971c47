"""The model-parallel ranks of a host other than the first: what `llama stack worker` runs.

A worker group may span hosts (WorkerSpec.nnodes). Host 0 is `llama stack run`: its WorkerGroup
runs ranks 0..k-1 and serves. Every other host runs its own share of the ranks here, in a loop:

    start the ranks -> they join host 0 at the rendezvous -> they follow rank 0's broadcasts
          ^                                                                      |
          +--- the group ended: rank 0 stopped or died, or one of ours did <-----+

so the group forms again as soon as host 0 starts it again (a crash restarts it there, see
group.py). The loop ends only when `stop` is set (Ctrl-C or SIGTERM in the command).

The first rank of the share reports to this loop over a pipe, as rank 0 reports to the group:
`Ready` once its shard is loaded and the group is formed, `Failed` if it could not start.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection
import threading
from collections.abc import Callable

from llama_core.engine.messages import Failed, Ready, WorkerSpec

_BACKOFF_FIRST_S = 0.5  # before joining again; doubles while the group keeps failing to form
_BACKOFF_MAX_S = 10.0


def serve_ranks(spec: WorkerSpec, say: Callable[[str], None], stop: threading.Event) -> None:
    """Run `spec.local_ranks` (spec.node_rank > 0) in the group at `spec.rendezvous` until `stop` is set.

    `say` gets one line per event: joining, joined, the group ended, a rank that failed to start.
    """
    backoff = _BACKOFF_FIRST_S
    while not stop.is_set():
        say(f"{_ranks(spec)}: joining the group at {spec.rendezvous}")
        joined, codes = _one_group(spec, say, stop)
        if stop.is_set():
            return
        if joined:
            backoff = _BACKOFF_FIRST_S
            say(f"The group ended (exit codes {codes}): host 0 stopped, or a rank died; joining again")
        stop.wait(backoff)
        backoff = min(backoff * 2, _BACKOFF_MAX_S)


def rank_main(rank: int, init_file: str, conn: object, spec: WorkerSpec, parent: int) -> None:
    """worker_main, in a process that dies with this host's loop: a killed `llama stack worker` must
    not leave its ranks in the group (its next start would add a second rank of the same number)."""
    import ctypes
    import os
    import signal

    if hasattr(ctypes, "CDLL"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
        except (OSError, AttributeError):
            pass  # not Linux: the rank ends when the group does
    if os.getppid() != parent:
        return  # the loop died before the line above: nothing to serve for
    from llama_core.engine.worker import worker_main

    worker_main(rank, init_file, conn, spec)


def _ranks(spec: WorkerSpec) -> str:
    """"Ranks 2-3 of 4" (or "Rank 1 of 2")."""
    first, last = spec.local_ranks.start, spec.local_ranks.stop - 1
    return f"Rank {first} of {spec.world_size}" if first == last else f"Ranks {first}-{last} of {spec.world_size}"


def _one_group(spec: WorkerSpec, say: Callable[[str], None], stop: threading.Event) -> tuple[bool, list[int | None]]:
    """Start the ranks, wait until one of them ends (or `stop`); (whether they joined, exit codes)."""
    import os

    ctx = mp.get_context("spawn")
    reports, child = ctx.Pipe(duplex=False)
    first = spec.local_ranks.start
    procs = []
    for rank in spec.local_ranks:
        p = ctx.Process(target=rank_main, args=(rank, "", child if rank == first else None, spec, os.getpid()),
                        name=f"llama-worker-{rank}", daemon=True)  # fmt: skip
        p.start()
        procs.append(p)
    child.close()
    joined = False
    waiting: list[object] = [reports, *(p.sentinel for p in procs)]
    try:
        while not stop.is_set():
            ready = mp.connection.wait(waiting, timeout=0.5)
            if any(r is not reports for r in ready):
                break  # a rank ended: the group is over
            if reports in ready:
                try:
                    msg = reports.recv()
                except EOFError:
                    waiting.remove(reports)
                    continue
                if isinstance(msg, Ready):
                    joined = True
                    say(f"{_ranks(spec)}: joined, on {msg.info.get('device')}; serving with host 0")
                elif isinstance(msg, Failed):
                    say(f"The ranks could not start: {msg.message}")
    finally:
        for p in procs:
            p.join(timeout=1 if stop.is_set() else 5)
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        reports.close()
    return joined, [p.exitcode for p in procs]
