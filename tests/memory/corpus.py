"""A small labelled corpus: one paragraph per standard-library module, in plain words."""

from __future__ import annotations

DOCS = {
    "csv": "The csv module implements classes to read and write tabular data in CSV format. "
    "Use csv.reader to read rows from a file and csv.writer to write rows, with dialects for Excel.",
    "json": "The json module encodes Python objects as JSON text and decodes JSON documents back into "
    "dictionaries and lists; json.dumps and json.loads work on strings.",
    "sqlite3": "The sqlite3 module is a DB-API interface to SQLite databases: connect to a file, "
    "execute SQL statements with a cursor and commit transactions.",
    "datetime": "The datetime module supplies classes for manipulating dates and times: date arithmetic, "
    "time zones, and formatting timestamps with strftime.",
    "random": "The random module generates pseudo-random numbers: random floats, integers in a range, "
    "shuffling a list and choosing a random element from a sequence.",
    "zipfile": "The zipfile module creates, reads, writes and lists ZIP archives; it can extract "
    "compressed files from an archive.",
}


def text_of(i: int) -> str:
    """A generated document of about three 32-piece chunks, different for each i."""
    return f"Document number {i}. " + " ".join(f"word{i}x{j} about topic {j % 7}" for j in range(40))
