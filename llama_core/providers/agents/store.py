"""Agents, sessions and turns in one SQLite database (WAL), so that a restart keeps them.

    <storage_dir>/agents.db
        agents   (agent_id, config)                         config: AgentConfig as JSON
        sessions (session_id, agent_id, name, started_at,   memory_bank: the session's own bank
                  memory_bank, attached)                    (attachments), attached: bank ids
        turns    (turn_id, session_id, seq, body)           body: the finished Turn as JSON, its steps inside

Deleting an agent deletes its sessions and their turns (foreign keys, ON DELETE CASCADE). Only
finished turns are stored: a turn that fails midway leaves the session as it was.

Ids are uuid4s that we make; an id a client sends is checked against that shape before any query
(a 400 naming the field), and an unknown one is a 404. Every method blocks: the provider calls
them in worker threads (`anyio.to_thread`). The store holds one connection for its life (WAL,
synchronous=NORMAL: a commit survives the process being killed at any moment) and a lock that
each method holds for its whole use of it, so calls from any number of threads never interleave
inside one transaction. `close()` closes it; the provider closes it on leaving.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from llama_core.errors import InvalidRequestError, NotFoundError, shown
from llama_core.types.agents import AgentConfig, Session, Turn
from llama_core.types.memory import MemoryBank

DB_NAME = "agents.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (agent_id TEXT PRIMARY KEY, config BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL REFERENCES agents (agent_id) ON DELETE CASCADE,
    session_name TEXT NOT NULL,
    started_at TEXT NOT NULL,
    memory_bank BLOB,             -- MemoryBank JSON, once an attachment arrives
    attached BLOB NOT NULL        -- JSON list of bank ids attached with memory_bank/attach
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_by_agent ON sessions (agent_id);
CREATE TABLE IF NOT EXISTS turns (
    turn_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,         -- the turns' order within their session
    body BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS turns_by_session ON turns (session_id, seq);
"""

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")

_encoder = msgspec.json.Encoder()
_config = msgspec.json.Decoder(AgentConfig)
_turn = msgspec.json.Decoder(Turn)
_bank = msgspec.json.Decoder(MemoryBank)
_ids = msgspec.json.Decoder(list[str])


def new_id() -> str:
    return str(uuid.uuid4())


def now() -> datetime:
    return datetime.now(UTC)


def check_id(value: str, field: str) -> str:
    """`value` if it has the shape of the ids we make (a lowercase uuid4); else a 400 naming `field`."""
    if not _UUID.fullmatch(value):
        raise InvalidRequestError(f"{field} '{shown(value, 60)}' is not an id this stack made (a uuid4).", field=field)
    return value


class AgentStore:
    """The database at `root / agents.db`, created on first use."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / DB_NAME
        self._lock = threading.Lock()
        # check_same_thread=False: any worker thread may use it, one at a time under self._lock.
        self._db: sqlite3.Connection | None = sqlite3.connect(
            self.path, timeout=30, isolation_level=None, check_same_thread=False
        )
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: a commit survives a process crash
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the connection (waiting for a call in progress); later calls raise sqlite3.ProgrammingError."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._db is None:
                raise sqlite3.ProgrammingError("The agent store is closed.")
            yield self._db

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # --- agents -------------------------------------------------------------------------------

    def create_agent(self, config: AgentConfig) -> str:
        agent_id = new_id()
        with self._transaction() as db:
            db.execute("INSERT INTO agents VALUES (?, ?)", (agent_id, _encoder.encode(config)))
        return agent_id

    def agent(self, agent_id: str) -> AgentConfig:
        """The agent's config; 400 for a malformed id, 404 for an unknown one."""
        check_id(agent_id, "agent_id")
        with self._connect() as db:
            row = db.execute("SELECT config FROM agents WHERE agent_id = ?", (agent_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"Unknown agent '{agent_id}'.")
        return _config.decode(row[0])

    def delete_agent(self, agent_id: str) -> list[tuple[str, MemoryBank | None]]:
        """Delete the agent, its sessions and turns; returns each session's id and own bank, if any
        (for the caller to remove the session's scratch folder and drop the bank)."""
        check_id(agent_id, "agent_id")
        with self._transaction() as db:
            rows = db.execute("SELECT session_id, memory_bank FROM sessions WHERE agent_id = ?", (agent_id,)).fetchall()
            if db.execute("DELETE FROM agents WHERE agent_id = ?", (agent_id,)).rowcount == 0:
                raise NotFoundError(f"Unknown agent '{agent_id}'.")
        return [(session_id, _bank.decode(bank) if bank is not None else None) for session_id, bank in rows]

    # --- sessions -----------------------------------------------------------------------------

    def create_session(self, agent_id: str, name: str) -> str:
        check_id(agent_id, "agent_id")
        session_id = new_id()
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM agents WHERE agent_id = ?", (agent_id,)).fetchone() is None:
                raise NotFoundError(f"Unknown agent '{agent_id}'.")
            db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, NULL, '[]')", (session_id, agent_id, name, now().isoformat())
            )
        return session_id

    def _session_row(self, db: sqlite3.Connection, agent_id: str, session_id: str) -> tuple:
        check_id(agent_id, "agent_id")
        check_id(session_id, "session_id")
        row = db.execute(
            "SELECT session_name, started_at, memory_bank, attached FROM sessions WHERE session_id = ? AND agent_id = ?",
            (session_id, agent_id),
        ).fetchone()
        if row is None:
            if db.execute("SELECT 1 FROM agents WHERE agent_id = ?", (agent_id,)).fetchone() is None:
                raise NotFoundError(f"Unknown agent '{agent_id}'.")
            raise NotFoundError(f"Unknown session '{session_id}' of agent '{agent_id}'.")
        return row

    def session(self, agent_id: str, session_id: str, turn_ids: list[str] | None = None) -> Session:
        """The session with its turns in order (only those of `turn_ids`, when given)."""
        for i, turn_id in enumerate(turn_ids or []):
            check_id(turn_id, f"turn_ids[{i}]")
        with self._connect() as db:
            name, started_at, bank, _ = self._session_row(db, agent_id, session_id)
            rows = db.execute("SELECT turn_id, body FROM turns WHERE session_id = ? ORDER BY seq", (session_id,))
            wanted = set(turn_ids) if turn_ids is not None else None
            turns = [_turn.decode(body) for turn_id, body in rows if wanted is None or turn_id in wanted]
        return Session(
            session_id=session_id,
            session_name=name,
            turns=turns,
            started_at=datetime.fromisoformat(started_at),
            memory_bank=_bank.decode(bank) if bank is not None else None,
        )

    def attached_banks(self, agent_id: str, session_id: str) -> list[str]:
        with self._connect() as db:
            return _ids.decode(self._session_row(db, agent_id, session_id)[3])

    def update_attached(self, agent_id: str, session_id: str, attach: list[str], detach: list[str]) -> None:
        """Add `attach` to the session's attached banks (once each, in order) and remove `detach`, in one transaction."""
        with self._transaction() as db:
            attached = _ids.decode(self._session_row(db, agent_id, session_id)[3])
            attached += [b for b in dict.fromkeys(attach) if b not in attached]
            attached = [b for b in attached if b not in detach]
            db.execute("UPDATE sessions SET attached = ? WHERE session_id = ?", (_encoder.encode(attached), session_id))

    def set_session_bank(self, agent_id: str, session_id: str, bank: MemoryBank) -> None:
        with self._transaction() as db:
            self._session_row(db, agent_id, session_id)
            db.execute("UPDATE sessions SET memory_bank = ? WHERE session_id = ?", (_encoder.encode(bank), session_id))

    def delete_session(self, agent_id: str, session_id: str) -> MemoryBank | None:
        """Delete the session and its turns; returns its own bank, if any (to drop)."""
        with self._transaction() as db:
            bank = self._session_row(db, agent_id, session_id)[2]
            db.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))
        return _bank.decode(bank) if bank is not None else None

    # --- turns --------------------------------------------------------------------------------

    def add_turn(self, agent_id: str, turn: Turn) -> None:
        """Store a finished turn after the session's others; 404 if the session went meanwhile."""
        with self._transaction() as db:
            self._session_row(db, agent_id, turn.session_id)
            (seq,) = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM turns WHERE session_id = ?", (turn.session_id,)).fetchone()
            db.execute("INSERT INTO turns VALUES (?, ?, ?, ?)", (turn.turn_id, turn.session_id, seq, _encoder.encode(turn)))

    def turn(self, agent_id: str, turn_id: str) -> Turn:
        """A finished turn of one of the agent's sessions; 404 otherwise."""
        check_id(agent_id, "agent_id")
        check_id(turn_id, "turn_id")
        with self._connect() as db:
            row = db.execute(
                "SELECT t.body FROM turns t JOIN sessions s ON s.session_id = t.session_id "
                "WHERE t.turn_id = ? AND s.agent_id = ?",
                (turn_id, agent_id),
            ).fetchone()
            if row is None:
                if db.execute("SELECT 1 FROM agents WHERE agent_id = ?", (agent_id,)).fetchone() is None:
                    raise NotFoundError(f"Unknown agent '{agent_id}'.")
                raise NotFoundError(f"Unknown turn '{turn_id}' of agent '{agent_id}'.")
        return _turn.decode(row[0])
