"""A throwaway PostgreSQL server with pgvector, from the machine's Debian packages, for remote::pgvector.

    with running_postgres() as pg:          # pg: host, port, db, user, password (a PGVectorImplConfig's fields)
        ...

`initdb` makes a cluster in a temporary directory (as the `postgres` user when we are root, which
PostgreSQL refuses to run as), with password authentication over TCP on a free loopback port; the
cluster is stopped and removed on exit. `pgvector_binaries()` says why it cannot run here (no
PostgreSQL, or no pgvector built for it): `.ci/install-pgvector` installs both. Used by the tests
(tests/memory/conftest.py) and benches/bench_memory.py.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

USER, PASSWORD = "llama", "pg-test-secret-7"


def pgvector_binaries() -> tuple[Path | None, str]:
    """(the bin directory of a PostgreSQL with pgvector, "") or (None, why there is none)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if not versions:
        return None, "PostgreSQL is not installed (apt-get install postgresql; `bash .ci/install-pgvector` does it all)"
    for initdb in reversed(versions):
        if (initdb.parents[1] / "lib" / "vector.so").exists():
            return initdb.parent, ""
    return None, f"pgvector is not installed for PostgreSQL {versions[-1].parts[-3]} (`bash .ci/install-pgvector`)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_postgres() -> Iterator[dict[str, object]]:
    """Start a cluster; yield the connection fields of its superuser USER and its `postgres` database."""
    bindir, why = pgvector_binaries()
    if bindir is None:
        raise RuntimeError(why)
    root = Path(tempfile.mkdtemp(prefix="llama-pg-"))
    data, pwfile, log = root / "data", root / "pw", root / "log"
    pwfile.write_text(PASSWORD)
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL will not run as root
        owner = pwd.getpwnam("postgres")
        for path in (root, pwfile):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def run(*argv: str | Path) -> None:
        subprocess.run([*as_user, *map(str, argv)], check=True, capture_output=True, cwd=root, timeout=120)

    try:
        run(bindir / "initdb", "-D", data, "-U", USER, f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=scram-sha-256",
            "-E", "UTF8", "--locale=C.UTF-8")  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"  # a test cluster: speed over durability
        run(bindir / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "-t", "60", "start")
        try:
            yield {"host": "127.0.0.1", "port": port, "db": "postgres", "user": USER, "password": PASSWORD}
        finally:
            run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def new_database(server: dict[str, object], name: str) -> dict[str, object]:
    """A fresh, empty database `name` on `server` (dropped first if there); its connection fields."""
    import psycopg

    fields = {k: server[k] for k in ("host", "port", "user", "password")}
    with psycopg.connect(dbname="postgres", autocommit=True, **fields) as conn:  # type: ignore[arg-type]
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return {**server, "db": name}
