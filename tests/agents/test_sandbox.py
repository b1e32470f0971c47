"""The code interpreter's bubblewrap sandbox: no network, nothing writable but its folder, limits kept."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import anyio
import pytest

from llama_core.errors import UnsupportedError
from llama_core.providers.agents.sandbox import Limits, run_code

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (.ci/run installs it)"),
]

TIGHT = Limits(cpu_seconds=2, wall_seconds=20, memory_mib=256, output_bytes=1000)


async def test_prints_come_back_between_markers(tmp_path: Path) -> None:
    result = await run_code("import sys\nprint(6 * 7)\nprint('oops', file=sys.stderr)", tmp_path, TIGHT)
    assert result.text == "completed\n[stdout]42\n[/stdout]\n[stderr]oops\n[/stderr]"
    assert result.attachments == []


async def test_a_network_connection_is_refused(tmp_path: Path) -> None:
    code = "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=5)\nexcept OSError as e:\n    print(e.errno)"
    result = await run_code(code, tmp_path, TIGHT)
    assert result.text == "completed\n[stdout]101\n[/stdout]"  # ENETUNREACH: the sandbox has no network


@pytest.mark.parametrize("path", ["/etc/sandbox-escape", "/tmp/escape", "/root/escape", "/usr/escape"])
async def test_nothing_outside_its_folder_is_writable(tmp_path: Path, path: str) -> None:
    code = f"try:\n    open({path!r}, 'w')\nexcept OSError as e:\n    print(type(e).__name__, e.errno)"
    result = await run_code(code, tmp_path, TIGHT)
    assert result.text == "completed\n[stdout]OSError 30\n[/stdout]"  # EROFS
    assert not Path(path).exists()


async def test_its_folder_is_writable_and_new_files_come_back(tmp_path: Path) -> None:
    result = await run_code("open('note.txt', 'w').write('kept')", tmp_path, TIGHT)
    assert result.status == "completed"
    assert (tmp_path / "note.txt").read_text() == "kept"
    [note] = result.attachments
    assert (note.mime_type, note.content.uri) == ("text/plain", "data:text/plain;base64," + base64.b64encode(b"kept").decode())
    again = await run_code("print(open('note.txt').read())", tmp_path, TIGHT)
    assert (again.text, again.attachments) == ("completed\n[stdout]kept\n[/stdout]", [])  # unchanged files do not come back


async def test_an_infinite_loop_is_killed_at_its_cpu_limit(tmp_path: Path) -> None:
    result = await run_code("while True:\n    pass", tmp_path, TIGHT)
    assert result.text == "killed: CPU time limit of 2 s"


async def test_a_sleeper_is_killed_at_its_wall_limit(tmp_path: Path) -> None:
    result = await run_code("import time\nprint('start', flush=True)\ntime.sleep(60)", tmp_path, Limits(wall_seconds=1))
    assert result.text == "killed: wall time limit of 1 s\n[stdout]start\n[/stdout]"


async def test_a_memory_bomb_fails_at_its_memory_limit(tmp_path: Path) -> None:
    result = await run_code("blocks = []\nwhile True:\n    blocks.append(bytearray(10**7))", tmp_path, TIGHT)
    assert result.status == "failed (exit code 1)"
    assert result.stderr.endswith("MemoryError\n")


async def test_output_past_its_limit_is_cut_and_the_run_killed(tmp_path: Path) -> None:
    result = await run_code("while True:\n    print('x' * 100)", tmp_path, TIGHT)
    assert result.status == "killed: output over the limit of 1000 bytes"
    assert len(result.stdout) == 1000


async def test_a_matplotlib_png_comes_back_as_an_attachment(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.savefig('plot.png')\nprint('saved')"
    result = await run_code(code, tmp_path, Limits())
    assert result.text == "completed\n[stdout]saved\n[/stdout]"
    [png] = result.attachments
    assert png.mime_type == "image/png"
    assert base64.b64decode(png.content.uri.removeprefix("data:image/png;base64,")).startswith(b"\x89PNG\r\n\x1a\n")


async def test_without_bwrap_the_code_is_refused_naming_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UnsupportedError, match=r"install the Debian/Ubuntu package `bubblewrap`") as e:
        await run_code("open('ran', 'w')", tmp_path, TIGHT)
    assert e.value.message.startswith("code_interpreter needs bubblewrap (the `bwrap` command)")
    assert not (tmp_path / "ran").exists()



# Three children each holding 600 MiB: every one is under the 1 GiB a process may map, together they are not.
FORKED_MEMORY = """\
import os, time
for _ in range(3):
    if os.fork() == 0:
        block = bytearray(600 * 2**20)  # zeroed pages: touched, so resident
        time.sleep(20)
        os._exit(0)
print('forked', flush=True)
for _ in range(3):
    os.wait()
print('all done')
"""

# A fork bomb on a leash (at most FORKS processes, a hundred a second) whose children each beat on
# their own file in the scratch folder until killed: a beat after the run means one outlived it.
FORK_BOMB = """\
import os, time
print('forking', flush=True)
for i in range(FORKS):
    if os.fork() == 0:
        while True:
            with open(f'beat-{i}', 'a') as f:
                f.write('.')
            time.sleep(0.05)
    time.sleep(0.01)
while len([n for n in os.listdir('.') if n.startswith('beat-')]) < FORKS:  # each child has started (a loaded machine is slow to schedule them)
    time.sleep(0.01)
print('all forked', flush=True)
"""


def _beats(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.glob("beat-*")}


async def test_memory_held_by_forked_children_is_killed_at_the_total_limit(tmp_path: Path) -> None:
    with anyio.fail_after(60):
        result = await run_code(FORKED_MEMORY, tmp_path, Limits(wall_seconds=30))
    assert result.text == "killed: memory over 1 GiB in total\n[stdout]forked\n[/stdout]"


async def test_a_fork_bomb_is_killed_at_the_process_limit(tmp_path: Path) -> None:
    with anyio.fail_after(60):
        result = await run_code(FORK_BOMB.replace("FORKS", "300"), tmp_path, Limits(wall_seconds=30, processes=64))
    assert result.text == "killed: more than 64 processes\n[stdout]forking\n[/stdout]"
    beats = _beats(tmp_path)
    assert 0 < len(beats) < 300  # stopped long before its 300 children (about 62: bwrap's two make 64)
    await anyio.sleep(0.5)
    assert _beats(tmp_path) == beats  # none outlived the sandbox


async def test_the_wall_limit_kills_every_process_in_the_sandbox(tmp_path: Path) -> None:
    code = FORK_BOMB.replace("FORKS", "10") + "time.sleep(60)"
    with anyio.fail_after(60):
        result = await run_code(code, tmp_path, Limits(wall_seconds=2))
    assert result.text == "killed: wall time limit of 2 s\n[stdout]forking\nall forked\n[/stdout]"
    beats = _beats(tmp_path)
    assert len(beats) == 10
    await anyio.sleep(0.5)
    assert _beats(tmp_path) == beats
