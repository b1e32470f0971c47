"""The code interpreter: Python run inside a bubblewrap sandbox, never outside one.

    result = await run_code("print(1 + 1)", scratch, Limits())
    result.text == "completed\\n[stdout]2\\n[/stdout]"

The sandbox (`bwrap`, Debian package `bubblewrap`):
- every namespace unshared (no network: only a loopback with nothing on it), all capabilities
  dropped, a new session (no terminal to push keystrokes into), killed with its parent;
- the file system read-only; the home folder, /tmp and ~/.llama hidden under empty read-only
  folders (a run config may hold keys), the Python installation bound back read-only;
- the session's scratch folder the one writable place, the working directory (at SCRATCH_MOUNT).

Limits (`Limits`): CPU seconds, memory (address space) and file size are rlimits the
runner inside sets on itself, hard, before the code runs. An rlimit binds one process, and the code
may fork: a watchdog here sums the resident memory of every process in the sandbox and counts them
every WATCH_SECONDS (from /proc), and kills the whole sandbox when the total passes `memory_mib` or
the count passes `processes`. Wall time is ours too (the sandbox is killed on expiry); stdout and
stderr each stop at `output_bytes` (the sandbox is killed when one passes). Killing the sandbox
kills bwrap's init of its PID namespace, which takes every process inside with it.

The result text is the status line, then `[stdout]…[/stdout]` and `[stderr]…[/stderr]` when not
empty. Files the code writes into the scratch folder (a matplotlib PNG) come back as attachments,
as data: URLs, up to ATTACHMENT_BYTES each.

Errors: without bwrap on the PATH, UnsupportedError naming the package. Nothing else raises: a
program that fails or is killed is a result saying so.
"""

from __future__ import annotations

import base64
import mimetypes
import os
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread
from anyio.abc import Process
from anyio.streams.memory import MemoryObjectSendStream

from llama_core.errors import UnsupportedError
from llama_core.paths import config_dir
from llama_core.types.agents import Attachment
from llama_core.types.common import URL

SCRATCH_MOUNT = "/tmp/scratch"
ATTACHMENT_BYTES = 8 * 2**20
WATCH_SECONDS = 0.05
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")

# Runs first inside the sandbox: the limits, then the code read from stdin, as a script named <code>.
RUNNER = """\
import resource, sys
cpu, memory, fsize = (int(a) for a in sys.argv[1:4])
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
del sys.argv[1:4]
source = sys.stdin.read()
sys.stdin.close()
namespace = {"__name__": "__main__"}
exec(compile(source, "<code>", "exec"), namespace)
"""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one run may use: CPU seconds (each process), wall seconds, memory (MiB: the address space
    of each process, and the resident memory of all of them together), processes (at once, bwrap's
    two included) and bytes of each of stdout and stderr (files it writes: 16 times that, each)."""

    cpu_seconds: int = 10
    wall_seconds: float = 30.0
    memory_mib: int = 1024
    output_bytes: int = 64 * 1024
    processes: int = 64


@dataclass(slots=True)
class CodeResult:
    status: str  # "completed", "failed (exit code 1)", "killed: ..."
    stdout: str
    stderr: str
    attachments: list[Attachment] = field(default_factory=list)

    @property
    def text(self) -> str:
        text = self.status
        if self.stdout:
            text += f"\n[stdout]{self.stdout}[/stdout]"
        if self.stderr:
            text += f"\n[stderr]{self.stderr}[/stderr]"
        return text


def bwrap() -> str:
    """bwrap's path; UnsupportedError when it is not installed (the code is never run without it)."""
    path = shutil.which("bwrap")
    if path is None:
        raise UnsupportedError(
            "code_interpreter needs bubblewrap (the `bwrap` command), which is not installed on this server: "
            "install the Debian/Ubuntu package `bubblewrap` (apt-get install bubblewrap). "
            "Code is never run outside the sandbox."
        )
    return path


def _inside(path: Path, folders: list[Path]) -> bool:
    return any(path == f or f in path.parents for f in folders)


def sandbox_command(scratch: Path, limits: Limits) -> list[str]:
    """The bwrap command line that runs RUNNER in `scratch` under `limits`."""
    hidden = sorted({p.resolve() for p in (Path.home(), config_dir(), Path("/tmp")) if p.resolve() != Path("/")})
    hidden = [p for p in hidden if not _inside(p.parent, hidden)]  # the outermost only
    cmd = [bwrap(), "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for folder in hidden:
        cmd += ["--tmpfs", str(folder)]
    # The interpreter and its packages, where a hidden folder covered them.
    for prefix in dict.fromkeys(Path(p).resolve() for p in (sys.prefix, sys.base_prefix)):
        if _inside(prefix, hidden):
            cmd += ["--ro-bind", str(prefix), str(prefix)]
    cmd += ["--bind", str(scratch), SCRATCH_MOUNT, "--chdir", SCRATCH_MOUNT]
    for folder in hidden:
        cmd += ["--remount-ro", str(folder)]
    cmd += [
        "--unshare-all", "--cap-drop", "ALL", "--new-session", "--die-with-parent",
        "--clearenv", "--setenv", "HOME", SCRATCH_MOUNT, "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
        "--setenv", "MPLBACKEND", "Agg", "--setenv", "MPLCONFIGDIR", f"{SCRATCH_MOUNT}/.matplotlib",
        "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
        "--", sys.executable, "-I", "-c", RUNNER,
        str(limits.cpu_seconds), str(limits.memory_mib * 2**20), str(limits.output_bytes * 16),
    ]  # fmt: skip
    return cmd


def _files(scratch: Path) -> dict[Path, tuple[int, int]]:
    """Every visible regular file under `scratch` with its (mtime_ns, size)."""
    found = {}
    for path in scratch.rglob("*"):
        if path.is_file() and not path.is_symlink() and not any(p.startswith(".") for p in path.relative_to(scratch).parts):
            stat = path.stat()
            found[path] = (stat.st_mtime_ns, stat.st_size)
    return found


def _attachment(path: Path) -> Attachment | None:
    if path.stat().st_size > ATTACHMENT_BYTES:
        return None
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    data = base64.b64encode(path.read_bytes()).decode()
    return Attachment(content=URL(uri=f"data:{mime};base64,{data}"), mime_type=mime)


async def _read(stream: anyio.abc.ByteReceiveStream, limit: int, sink: bytearray, over: MemoryObjectSendStream) -> None:
    async for data in stream:
        sink += data
        if len(sink) > limit:
            del sink[limit:]
            await over.send(None)
            return


def _tree(root: int) -> dict[int, int]:
    """Every process descended from `root` (not `root` itself) with its resident bytes, read from
    /proc (this kernel may lack /proc/PID/task/TID/children, so every process's parent is read)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # gone meanwhile
            continue
        # The name, in parentheses, may hold spaces; after it come state, ppid, ... and rss (24th field).
        fields = stat[stat.rindex(b")") + 2 :].split()
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        rss[pid] = int(fields[21]) * PAGE_BYTES
    found: dict[int, int] = {}
    stack = list(children.get(root, ()))
    while stack:
        pid = stack.pop()
        if pid not in found:
            found[pid] = rss[pid]
            stack += children.get(pid, ())
    return found


def _kill(process: Process) -> None:
    """Kill bwrap and its children: one of them is the init of the sandbox's PID namespace, whose
    death kills everything inside at once (a fork bomb cannot outrun it)."""
    for pid in _tree(process.pid) if process.returncode is None else ():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _size(mib: int) -> str:
    return f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"


async def run_code(code: str, scratch: Path, limits: Limits) -> CodeResult:
    """Run `code` (Python) in the sandbox with `scratch` as its writable working directory."""
    command = sandbox_command(scratch, limits)  # UnsupportedError before anything runs
    scratch.mkdir(parents=True, exist_ok=True)
    before = _files(scratch)
    out, err = bytearray(), bytearray()
    killed: str | None = None
    send_over, receive_over = anyio.create_memory_object_stream[None](2)
    # Leaving `async with process` closes its pipes; the process is dead (killed if need be) by then.
    async with await anyio.open_process(command, start_new_session=True) as process, send_over, receive_over:
        try:
            async with anyio.create_task_group() as tg:
                assert process.stdin and process.stdout and process.stderr
                tg.start_soon(_read, process.stdout, limits.output_bytes, out, send_over)
                tg.start_soon(_read, process.stderr, limits.output_bytes, err, send_over)
                await process.stdin.send(code.encode())
                await process.stdin.aclose()
                with anyio.move_on_after(limits.wall_seconds) as wall:
                    async with anyio.create_task_group() as watch:

                        async def on_output_limit() -> None:
                            nonlocal killed
                            await receive_over.receive()
                            killed = killed or f"killed: output over the limit of {limits.output_bytes} bytes"
                            _kill(process)

                        async def on_usage_limit() -> None:
                            nonlocal killed
                            while True:
                                await anyio.sleep(WATCH_SECONDS)
                                tree = await anyio.to_thread.run_sync(_tree, process.pid)
                                if len(tree) > limits.processes:
                                    killed = killed or f"killed: more than {limits.processes} processes"
                                elif sum(tree.values()) > limits.memory_mib * 2**20:
                                    killed = killed or f"killed: memory over {_size(limits.memory_mib)} in total"
                                else:
                                    continue
                                _kill(process)
                                return

                        watch.start_soon(on_output_limit)
                        watch.start_soon(on_usage_limit)
                        await process.wait()
                        watch.cancel_scope.cancel()
                if wall.cancelled_caught:
                    killed = f"killed: wall time limit of {limits.wall_seconds:g} s"
                    _kill(process)
                    await process.wait()
        finally:
            with anyio.CancelScope(shield=True):
                if process.returncode is None:
                    _kill(process)
                    await process.wait()
    status = killed or _status(process.returncode, limits)
    after = _files(scratch)
    changed = sorted(p for p, stamp in after.items() if before.get(p) != stamp)
    attachments = [a for a in map(_attachment, changed) if a is not None]
    return CodeResult(status, out.decode(errors="replace"), err.decode(errors="replace"), attachments)


def _status(returncode: int | None, limits: Limits) -> str:
    if returncode == 0:
        return "completed"
    # bwrap passes on its child's fate as an exit status: 128 + signal for a signal.
    sig = -returncode if returncode is not None and returncode < 0 else (returncode or 0) - 128
    if sig in (signal.SIGXCPU, signal.SIGKILL):
        return f"killed: CPU time limit of {limits.cpu_seconds} s"
    if sig == signal.SIGXFSZ:
        return f"killed: file size limit of {limits.output_bytes * 16} bytes"
    if sig > 0:
        try:
            return f"killed by signal {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"
    return f"failed (exit code {returncode})"
