"""Fetch files over HTTP: ranged parts in parallel, resume after a cut, retry with backoff.

Each file is first probed with `Range: bytes=0-0` (CloudFront refuses HEAD; the 206's Content-Range
carries the size). It then lands in `<name>.partial` beside a record of the bytes written per part
(partial.py); both survive a cut connection, a crash or Ctrl-C, and the next run asks only for the
missing ranges. A finished file is renamed into place. Parts of all files share one pool of
`max_parallel` streams; a cut stream retries its part from where it stopped, with backoff.

Messages never hold a URL's query string (a signature is a credential): see `redact`.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import anyio

from llama_core.download.local import human_size
from llama_core.download.partial import PART_SIZE, SAVE_EVERY_S, PartialFile, RemoteFile
from llama_core.errors import DownloadError, first_error
from llama_core.redact import redact_urls as redact  # a signed URL's query is its signature
from llama_core.retry import RetryPolicy, next_delay, parse_retry_after, retryable_status

if TYPE_CHECKING:
    import httpx

REPLAY_S = 0.1  # how often the worker threads' progress reaches `Progress`
REPORT_BYTES = 1 << 20  # a thread logs its bytes in steps of about this many
DISK_HEADROOM = 1.05  # ask for 5% more free space than the bytes still to fetch
MAX_DELAY_S = 60.0  # the longest backoff between two tries of a part (the default 5 retries reach 16 s)

class Progress(Protocol):
    """How the core reports a download. `start` may be called again for a file that restarts."""

    def start(self, name: str, total: int | None, done: int) -> None: ...
    def advance(self, name: str, n: int) -> None: ...
    def finish(self, name: str) -> None: ...
    def note(self, message: str) -> None: ...


class NullProgress:
    """Reports nothing."""

    def start(self, name: str, total: int | None, done: int) -> None:
        pass

    def advance(self, name: str, n: int) -> None:
        pass

    def finish(self, name: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass


# (status, file) -> the one-line message of a non-retryable HTTP status. Sources (Meta, ...) pass their own.
StatusMessage = Callable[[int, RemoteFile], str]


def default_status_message(status: int, file: RemoteFile) -> str:
    return f"Downloading {file.name} failed: the server answered {status} for {redact(file.url)}."


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchOptions:
    max_parallel: int = 4  # concurrent HTTP streams, over all files
    part_size: int = PART_SIZE
    retries: int = 5  # failed tries in a row (without new bytes) before giving up on a part
    backoff_s: float = 1.0  # wait before the first retry; doubled for each further one
    timeout_s: float = 60.0  # connect / read timeout of one request
    status_message: StatusMessage = default_status_message

    @property
    def retry(self) -> RetryPolicy:
        """The shared retry policy (llama_core.retry) with these counts: a ranged GET is always safe to send again."""
        return RetryPolicy(attempts=self.retries + 1, base_delay=self.backoff_s, max_delay=MAX_DELAY_S)


class _RetryableStatus(Exception):
    """A "not now" answer (llama_core.retry): its words are what the user reads between retries."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        from http import HTTPStatus

        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "error"
        asked = f", asking to retry after {retry_after:g} s" if retry_after is not None else ""
        super().__init__(f"the server answered {status} {phrase}{asked}")
        self.retry_after = retry_after


def _content_range_total(value: str | None) -> int | None:
    # "bytes 0-0/1234" -> 1234; "bytes */0" (a 416's) -> 0; "bytes 0-0/*" -> None
    match = re.fullmatch(r"bytes (?:\d+-\d+|\*)/(\d+|\*)", (value or "").strip())
    return int(match.group(1)) if match and match.group(1) != "*" else None


def _content_range_start(value: str | None) -> int | None:
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", (value or "").strip())
    return int(match.group(1)) if match else None


def _describe(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    if isinstance(error, _RetryableStatus | DownloadError):
        return text  # already in words
    return redact(f"{type(error).__name__}: {text}" if type(error).__name__ not in text else text)


def _unresolvable_host(error: BaseException) -> str | None:
    """The host name a connect error could not resolve (DNS said no: retrying will not help), else None."""
    import socket

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            try:
                return error.request.url.host  # type: ignore[attr-defined]
            except (AttributeError, RuntimeError):  # httpx raises RuntimeError for an error without its request
                return "the server"
        seen = seen.__cause__ or seen.__context__
    return None


def check_disk(dest: Path, need: int) -> None:
    """DownloadError, before anything is fetched, when `dest` has not `need` bytes free (with headroom)."""
    free = shutil.disk_usage(dest).free
    if need * DISK_HEADROOM > free:
        raise DownloadError(
            f"Not enough disk space in {dest}: the download needs {human_size(need)} more, "
            f"{human_size(free)} is free. Free some space (or set LLAMA_STACK_CONFIG_DIR) and run it again."
        )


def write_error(error: OSError, where: Path) -> DownloadError:
    """One line for a local file that cannot be written (a full disk, permissions)."""
    import errno

    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        what = "The disk is full" if error.errno == errno.ENOSPC else f"Cannot write more ({error.strerror})"
        return DownloadError(
            f"{what} in {where}: free some space (or set LLAMA_STACK_CONFIG_DIR) and run the same command again; "
            "it resumes where it stopped."
        )
    return DownloadError(f"Cannot write {error.filename or where}: {error.strerror or error}.")


class _Stopped(Exception):
    """A worker thread saw the stop flag: another part failed, or the run was cancelled."""


class Fetcher:
    """Fetches a list of files into one folder (see the module docstring).

    Transfers run in worker threads on a sync httpx.Client (with 1 MiB reads, about a third less CPU
    per byte than the async client measured here, which matters at LAN speeds on small machines);
    the event loop only schedules them and replays their progress events. A failure or a cancellation sets `stop`, which every thread
    checks between chunks and during backoff.
    """

    def __init__(self, client: httpx.Client, options: FetchOptions, progress: Progress) -> None:
        self.client = client
        self.options = options
        self.progress = progress
        self.stop = threading.Event()
        self.lock = threading.Lock()  # part counts and progress records shared by a file's threads
        self.events: deque[tuple[str, str, int, int | None]] = deque()  # (kind, file, n, total) from threads

    async def fetch(self, files: Sequence[RemoteFile], dest: Path) -> list[Path]:
        """Fetch `files` under `dest`; files already there at their full size are kept as they are."""
        dest.mkdir(parents=True, exist_ok=True)
        plans = [PartialFile(file=f, path=dest / f.name, part_size=self.options.part_size) for f in files]
        todo = [p for p in plans if not (p.file.size and _size(p.path) == p.file.size)]
        # The first file alone, then the rest at once: a refused URL fails on one request, and always the same one.
        for batch in (todo[:1], todo[1:]):
            await self._in_threads([functools.partial(self._probe, p) for p in batch])
        todo = [p for p in todo if not (p.total is not None and _size(p.path) == p.total)]
        for p in plans:
            if not any(p is q for q in todo):
                self.progress.note(f"{p.file.name} is already downloaded; skipping.")
        for p in todo:
            p.load()
        self._check_disk(dest, todo)
        queue = deque((p, i) for p in todo for i in range(p.n_parts) if p.done[i] < p.part_len(i))
        for p in todo:
            p.pending = sum(1 for q, _ in queue if q is p)
        try:
            for p in todo:
                self._open(p)
            workers = min(self.options.max_parallel, len(queue))
            await self._in_threads([functools.partial(self._worker, queue)] * workers)
        finally:
            for p in todo:
                self._close(p)
        for p in todo:  # files with nothing left to fetch (empty, or complete before a crash) never met a worker
            if p.partial.exists():
                self._finish(p)
        self._replay()
        return [p.path for p in plans]

    async def _in_threads(self, jobs: list[Callable[[], None]]) -> None:
        """Run `jobs` in threads, `max_parallel` at a time, replaying their events; the first failure wins."""
        if not jobs:
            return
        limiter = anyio.CapacityLimiter(self.options.max_parallel)
        remaining = len(jobs)

        async def run(job: Callable[[], None]) -> None:
            nonlocal remaining
            try:
                await anyio.to_thread.run_sync(job, limiter=limiter)  # waits for the thread, even when cancelled
            except _Stopped:
                pass  # told to stop: whatever stopped it (a sibling's error, a cancellation) is raised instead
            except BaseException:
                self.stop.set()
                raise
            finally:
                remaining -= 1
                if remaining == 0:
                    tg.cancel_scope.cancel()  # only `replay` is left

        async def replay() -> None:
            try:
                while True:
                    self._replay()
                    await anyio.sleep(REPLAY_S)
            finally:
                # Cancelled: the jobs are over, or the run is (Ctrl-C, a failed sibling). Being a sibling of
                # the jobs, not their parent, is what lets this reach the threads while they still run.
                self.stop.set()
                self._replay()

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(replay)
                for job in jobs:
                    tg.start_soon(run, job)
        except BaseExceptionGroup as group:
            # A failed part stops the others; report the failure, not the stops and cancellations.
            raise first_error(group, quiet=(_Stopped, anyio.get_cancelled_exc_class())) from None
        self.stop.clear()

    def _replay(self) -> None:
        # Threads log events; the loop hands them to `progress`, merging runs of bytes for one file.
        while self.events:
            kind, name, n, total = self.events.popleft()
            if kind == "advance":
                while self.events and self.events[0][:2] == ("advance", name):
                    n += self.events.popleft()[2]
                self.progress.advance(name, n)
            elif kind == "start":
                self.progress.start(name, total, n)
            elif kind == "finish":
                self.progress.finish(name)
            else:
                self.progress.note(name)

    def _probe(self, p: PartialFile) -> None:
        failures = 0
        while True:
            try:
                with self.client.stream("GET", p.file.url, headers={"Range": "bytes=0-0"}) as r:
                    if r.status_code == 416:  # an empty file: no byte 0 to send
                        p.total, p.ranges = _content_range_total(r.headers.get("content-range")), True
                        if p.total is not None:
                            return
                    self._check_status(r, p.file)
                    if r.status_code == 206:
                        p.total = _content_range_total(r.headers.get("content-range")) or p.file.size or None
                        p.ranges = p.total is not None
                    else:  # 200: the server ignores Range; one stream, from the start each time
                        length = r.headers.get("content-length")
                        p.total = int(length) if length and length.isdigit() else None
                        p.ranges = False
                return
            except (_RetryableStatus, _transport_errors()) as error:
                failures = self._backoff(failures + 1, error, p.file)

    def _check_status(self, r: httpx.Response, file: RemoteFile) -> None:
        if r.status_code in (200, 206):
            return
        if retryable_status(r.status_code):
            raise _RetryableStatus(r.status_code, parse_retry_after(r.headers.get("retry-after")))
        raise DownloadError(redact(self.options.status_message(r.status_code, file)))

    def _backoff(self, failures: int, error: BaseException, file: RemoteFile) -> int:
        host = _unresolvable_host(error)
        if host is not None:
            raise DownloadError(f"Cannot resolve the host name {host} (DNS) to download {file.name}: check the URL and the network.")
        retry_after = getattr(error, "retry_after", None)
        delay = next_delay(self.options.retry, failures, retry_after)
        if delay is None and retry_after is not None and retry_after > self.options.retry.max_wait:
            raise DownloadError(
                f"Downloading {file.name}: {_describe(error)}; that is longer than we wait "
                f"({self.options.retry.max_wait:g} s). Run the same command again later: it resumes where it stopped."
            )
        if delay is None and isinstance(error, _RetryableStatus):
            raise DownloadError(
                f"Downloading {file.name} failed: {_describe(error)}, {failures} tries. "
                "Run the same command again later: it resumes where it stopped."
            )
        if delay is None:
            raise DownloadError(
                f"Network error while downloading {file.name} ({_describe(error)}), {failures} tries. "
                "Check the connection and run the same command again: it resumes where it stopped."
            )
        self.events.append(("note", f"{file.name}: {_describe(error)}; retry {failures} of {self.options.retries} in {delay:.1f}s", 0, None))
        if self.stop.wait(delay):
            raise _Stopped()
        return failures

    def _check_disk(self, dest: Path, plans: list[PartialFile]) -> None:
        check_disk(dest, sum(p.remaining for p in plans))

    def _open(self, p: PartialFile) -> None:
        p.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not p.partial.exists() or not any(p.done)
        p.fd = os.open(p.partial, os.O_RDWR | os.O_CREAT, 0o644)
        if fresh and p.total is not None:
            os.ftruncate(p.fd, p.total)  # sparse: parts land at their offsets in any order
        self.progress.start(p.file.name, p.total, sum(p.done))

    def _close(self, p: PartialFile) -> None:
        with self.lock:
            if p.fd >= 0:
                os.close(p.fd)
                p.fd = -1
                if p.partial.exists() and p.ranges:
                    p.save()  # best effort: on a full disk the last record stays, which lags the data

    def _finish(self, p: PartialFile) -> None:
        self._close(p)
        p.partial.replace(p.path)
        p.record.unlink(missing_ok=True)
        self.events.append(("finish", p.file.name, 0, None))

    def _worker(self, queue: deque[tuple[PartialFile, int]]) -> None:
        while not self.stop.is_set():
            try:
                p, i = queue.popleft()
            except IndexError:
                return
            self._fetch_part(p, i)
            with self.lock:
                p.pending -= 1
                last = p.pending == 0
            if last:
                self._finish(p)

    def _fetch_part(self, p: PartialFile, i: int) -> None:
        start, end = p.part_span(i)
        failures = 0
        while True:
            before = p.done[i]
            try:
                self._stream(p, i, start, end)
                if p.total is None or p.done[i] >= end - start:
                    return
                error: BaseException = DownloadError(f"the server sent {p.done[i] - before} bytes of {end - start - before}")
            except (_RetryableStatus, _transport_errors()) as e:
                error = e
            failures = self._backoff(1 if p.done[i] > before else failures + 1, error, p.file)
            if not p.ranges:  # no Range support: start the file over
                p.done[i] = 0
                os.ftruncate(p.fd, p.total or 0)
                self.events.append(("start", p.file.name, 0, p.total))

    def _stream(self, p: PartialFile, i: int, start: int, end: int) -> None:
        offset = start + p.done[i]
        headers = {"Range": f"bytes={offset}-{end - 1}"} if p.ranges else {}
        name, stop, unreported = p.file.name, self.stop, 0
        try:
            with self.client.stream("GET", p.file.url, headers=headers) as r:
                self._check_status(r, p.file)
                if p.ranges and (r.status_code != 206 or _content_range_start(r.headers.get("content-range")) != offset):
                    raise DownloadError(f"{name}: the server ignored the byte range it had offered; cannot resume it.")
                for chunk in r.iter_raw():
                    if stop.is_set():
                        raise _Stopped()
                    n = len(chunk) if p.total is None else min(len(chunk), end - offset)
                    os.pwrite(p.fd, chunk[:n] if n < len(chunk) else chunk, offset)
                    offset += n
                    p.done[i] += n
                    unreported += n
                    if unreported >= REPORT_BYTES:
                        self.events.append(("advance", name, unreported, None))
                        unreported = 0
                    if p.ranges and time.monotonic() - p.saved_at > SAVE_EVERY_S:
                        with self.lock:
                            p.save()
        finally:
            if unreported:
                self.events.append(("advance", name, unreported, None))


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _transport_errors() -> type[Exception]:
    import httpx

    return httpx.TransportError


def new_client(options: FetchOptions) -> httpx.Client:
    """An httpx client for fetching: identity encoding (byte offsets are file offsets), redirects followed.

    Its sockets read 1 MiB at a time (large_reads.py); other clients keep httpcore's 64 KiB.
    """
    import httpx

    from llama_core import __version__
    from llama_core.download.large_reads import large_reads

    limits = httpx.Limits(max_connections=options.max_parallel + 2, max_keepalive_connections=options.max_parallel + 2)
    return httpx.Client(
        transport=large_reads(httpx.HTTPTransport(limits=limits)),
        follow_redirects=True,
        timeout=httpx.Timeout(options.timeout_s),
        headers={"Accept-Encoding": "identity", "User-Agent": f"llama-toolchain/{__version__}"},
    )


async def fetch_files(
    files: Sequence[RemoteFile],
    dest: Path,
    *,
    options: FetchOptions | None = None,
    progress: Progress | None = None,
    client: httpx.Client | None = None,
) -> list[Path]:
    """Fetch `files` into `dest` (see the module docstring); return their paths.

    Raises DownloadError with one line (no signature in it) for an HTTP refusal, a network failure
    that outlasted the retries, or too little disk space (checked before any file's bytes are fetched).
    """
    options = options or FetchOptions()
    own = client is None
    client = client or new_client(options)
    try:
        return await Fetcher(client, options, progress or NullProgress()).fetch(files, dest)
    except OSError as error:  # our own files (httpx's errors are not OSErrors): a full disk, permissions
        raise write_error(error, dest) from None
    finally:
        if own:
            client.close()
