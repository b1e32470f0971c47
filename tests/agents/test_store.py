"""The agents' SQLite store: one connection shared by worker threads, and a kill at any moment
leaves every acknowledged turn in place."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from llama_core.providers.agents.store import DB_NAME, AgentStore, new_id, now
from llama_core.types.agents import AgentConfig, Turn
from llama_core.types.common import StopReason
from llama_core.types.messages import CompletionMessage, UserMessage


def a_turn(session_id: str, text: str) -> Turn:
    return Turn(
        turn_id=new_id(), session_id=session_id, input_messages=[UserMessage(content=text)], steps=[],
        output_message=CompletionMessage(content=text.upper(), stop_reason=StopReason.end_of_turn), started_at=now(),
    )  # fmt: skip


def test_threads_share_one_connection_without_mixing_transactions(tmp_path: Path) -> None:
    store = AgentStore(tmp_path)
    agent_id = store.create_agent(AgentConfig(model="m", instructions="i"))
    sessions = [store.create_session(agent_id, f"s{i}") for i in range(8)]
    errors: list[BaseException] = []

    def work(session_id: str) -> None:
        try:
            for n in range(25):
                store.add_turn(agent_id, a_turn(session_id, f"{session_id} {n}"))
                store.session(agent_id, session_id)
        except BaseException as e:  # noqa: BLE001 -- reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for session_id in sessions:
        texts = [t.input_messages[0].content for t in store.session(agent_id, session_id).turns]
        assert texts == [f"{session_id} {n}" for n in range(25)]  # each session's turns, in order
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.agent(agent_id)


CHILD = """
import sys
from pathlib import Path
sys.path[:0] = [{tests!r}]
from agents.test_store import a_turn
from llama_core.providers.agents.store import AgentStore
from llama_core.types.agents import AgentConfig
store = AgentStore(Path({root!r}))
agent_id = store.create_agent(AgentConfig(model="m", instructions="i"))
session_id = store.create_session(agent_id, "s")
print(agent_id, session_id, flush=True)
n = 0
while True:
    store.add_turn(agent_id, a_turn(session_id, str(n)))
    print(n, flush=True)  # acknowledged: committed
    n += 1
"""


def test_a_kill_mid_write_keeps_every_acknowledged_turn(tmp_path: Path) -> None:
    tests = str(Path(__file__).parent.parent)
    code = textwrap.dedent(CHILD.format(tests=tests, root=str(tmp_path)))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    agent_id, session_id = child.stdout.readline().split()
    acknowledged = -1
    while acknowledged < 40:
        acknowledged = int(child.stdout.readline())
    child.send_signal(signal.SIGKILL)  # between or inside commits: wherever it is
    child.wait()
    child.stdout.close()
    store = AgentStore(tmp_path)
    turns = [int(t.input_messages[0].content) for t in store.session(agent_id, session_id).turns]
    assert turns[: acknowledged + 1] == list(range(acknowledged + 1))
    assert turns == list(range(len(turns)))  # at most the one in flight besides, and nothing torn
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store.close()
