"""A file being fetched: `<name>.partial` and its record `<name>.partial.json`.

The partial file is created at the full size (sparse), parts land at their offsets in any order,
and the record says how many bytes of each part are written:

    {"size": 3670016, "part_size": 1048576, "done": [1048576, 524288, 0, 0]}

A record that does not match the server's size or our part size is ignored (the file starts over).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

PART_SIZE = 64 * 2**20  # bytes per ranged request; 16 parts for 1 GiB keeps 4 streams busy to the end
SAVE_EVERY_S = 0.5  # how often a file's record is rewritten while bytes arrive
PARTIAL = ".partial"


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """One file to fetch: `name` is its '/'-separated path under the destination folder."""

    name: str
    url: str  # may carry a signature: never print it, print `redact(url)`
    size: int = 0  # bytes when known in advance (CDNs that refuse HEAD), else 0: ask the server


@dataclass(slots=True)
class PartialFile:
    """One file being fetched: its parts, and how many bytes of each are already on disk."""

    file: RemoteFile
    path: Path
    total: int | None = None  # None: the server did not say; fetched in one stream, no resume
    ranges: bool = False  # the server honours Range
    part_size: int = PART_SIZE
    done: list[int] = field(default_factory=list)
    pending: int = 0  # parts not yet complete
    fd: int = -1
    saved_at: float = 0.0

    @property
    def partial(self) -> Path:
        return self.path.with_name(self.path.name + PARTIAL)

    @property
    def record(self) -> Path:
        return self.path.with_name(self.path.name + PARTIAL + ".json")

    def part_span(self, i: int) -> tuple[int, int]:
        """Byte range [start, end) of part `i`; one part spans the whole file without Range support."""
        if not self.ranges:
            return 0, self.total or 0
        start = i * self.part_size
        return start, min(self.total or 0, start + self.part_size)

    def part_len(self, i: int) -> int:
        start, end = self.part_span(i)
        return 1 if self.total is None else end - start  # unknown length: never complete up front

    @property
    def n_parts(self) -> int:
        if self.total is None or not self.ranges:
            return 1
        return max(1, -(-self.total // self.part_size))

    @property
    def remaining(self) -> int:
        return (self.total or 0) - sum(self.done)

    def save(self) -> bool:
        """Write the record (atomically). It lags the data, never leads it: bytes land before they are counted.

        False when it cannot be written (a full disk): the previous record stays, and still lags the data.
        """
        state = {"size": self.total, "part_size": self.part_size, "done": self.done}
        tmp = self.record.with_name(self.record.name + ".tmp")
        self.saved_at = time.monotonic()
        try:
            tmp.write_text(json.dumps(state))
            tmp.replace(self.record)
        except OSError:
            tmp.unlink(missing_ok=True)
            return False
        return True

    def load(self) -> None:
        """Pick up a previous run's bytes if its record matches this file's size and parts."""
        self.done = [0] * self.n_parts
        try:
            state = json.loads(self.record.read_text())
        except (OSError, ValueError):
            return
        if not self.partial.exists() or not self.ranges:
            return
        if state.get("size") == self.total and state.get("part_size") == self.part_size:
            done = state.get("done")
            if isinstance(done, list) and len(done) == self.n_parts and all(isinstance(d, int) for d in done):
                self.done = [max(0, min(d, end - start)) for d, (start, end) in zip(done, map(self.part_span, range(self.n_parts)))]
