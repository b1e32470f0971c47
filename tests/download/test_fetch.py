"""The fetcher on its own, under asyncio and trio: parts, cuts, servers without Range, progress, signed-URL helpers."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable

import anyio
import pytest

from download.cdn import FakeCDN
from download.conftest import FOLDER, PART
from llama_core.download import FetchOptions, RemoteFile, fetch_files, redact
from llama_core.download.meta import check_signed_url, file_url, url_expiry
from llama_core.errors import DownloadError, InvalidRequestError

pytestmark = pytest.mark.anyio
OPTIONS = FetchOptions(part_size=PART, backoff_s=0.001, retries=2)
SHARD = f"/{FOLDER}/consolidated.00.pth"


class Recorder:
    """A Progress that writes down what it is told."""

    def __init__(self, on_advance: Callable[[], object] = lambda: None) -> None:
        self.events: list[tuple[str, ...]] = []
        self.bytes: dict[str, int] = {}
        self.on_advance = on_advance

    def start(self, name: str, total: int | None, done: int) -> None:
        self.events.append(("start", name, str(total), str(done)))
        self.bytes[name] = done

    def advance(self, name: str, n: int) -> None:
        self.bytes[name] += n
        self.on_advance()

    def finish(self, name: str) -> None:
        self.events.append(("finish", name))

    def note(self, message: str) -> None:
        self.events.append(("note", message))


def _remote(cdn: FakeCDN, *names: str) -> list[RemoteFile]:
    url = cdn.signed_url()
    return [RemoteFile(name, file_url(url, FOLDER, name)) for name in names]


async def test_parts_in_parallel_with_two_cuts(cdn, files, tmp_path):
    cdn.cut(SHARD, 100)
    cdn.cut(SHARD, 2 * PART + 7)
    progress = Recorder()
    paths = await fetch_files(_remote(cdn, "consolidated.00.pth", "params.json"), tmp_path / "out", options=OPTIONS, progress=progress)
    assert [p.read_bytes() for p in paths] == [files["consolidated.00.pth"], files["params.json"]]
    assert progress.bytes == {"consolidated.00.pth": len(files["consolidated.00.pth"]), "params.json": 29}
    assert [e for e in progress.events if e[0] == "start"] == [
        ("start", "consolidated.00.pth", str(3 * PART + PART // 2), "0"),
        ("start", "params.json", "29", "0"),
    ]
    assert sorted(e for e in progress.events if e[0] == "finish") == [("finish", "consolidated.00.pth"), ("finish", "params.json")]
    notes = [e[1] for e in progress.events if e[0] == "note"]
    assert len(notes) == 2 and all(n.startswith("consolidated.00.pth: RemoteProtocolError:") for n in notes)
    assert (SHARD, f"bytes=100-{PART - 1}") in [(p, r) for _, p, r in cdn.requests]
    assert (SHARD, f"bytes={2 * PART + 7}-{3 * PART - 1}") in [(p, r) for _, p, r in cdn.requests]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["consolidated.00.pth", "params.json"]


async def test_cancelled_download_stops_at_once_and_resumes(cdn, files, tmp_path):
    cdn.rate = 2**20  # 1 MiB/s per stream: each 1 MiB part takes a second
    out, shard = tmp_path / "out", files["consolidated.00.pth"]
    with anyio.CancelScope() as scope:
        cancelled_at: list[float] = []
        progress = Recorder(on_advance=lambda: cancelled_at.append(time.monotonic()) or scope.cancel())
        await fetch_files(_remote(cdn, "consolidated.00.pth"), out, options=OPTIONS, progress=progress)
    assert scope.cancelled_caught and time.monotonic() - cancelled_at[0] < 0.5  # the threads saw the stop flag
    record = json.loads((out / "consolidated.00.pth.partial.json").read_text())
    assert record["size"] == len(shard) and 0 < sum(record["done"]) < len(shard)
    assert not (out / "consolidated.00.pth").exists()

    cdn.rate, cdn.requests = None, []
    [path] = await fetch_files(_remote(cdn, "consolidated.00.pth"), out, options=OPTIONS)
    assert path.read_bytes() == shard
    starts = sorted(int(r.split("=")[1].split("-")[0]) for _, _, r in cdn.requests if r != "bytes=0-0")
    assert starts == sorted(i * PART + done for i, done in enumerate(record["done"]) if done < min(PART, len(shard) - i * PART))


async def test_server_without_range_support_starts_over_after_a_cut(cdn, files, tmp_path):
    cdn.ranges = False
    cdn.cut(SHARD, PART)  # spent on the probe, which the server answers with the whole file (we hang up)
    cdn.cut(SHARD, PART)
    progress = Recorder()
    [path] = await fetch_files(_remote(cdn, "consolidated.00.pth"), tmp_path, options=OPTIONS, progress=progress)
    assert path.read_bytes() == files["consolidated.00.pth"]
    assert [r for _, p, r in cdn.requests if p == SHARD] == ["bytes=0-0", None, None]  # probe, cut, whole again
    starts = [e for e in progress.events if e[0] == "start"]
    assert starts == [("start", "consolidated.00.pth", str(len(path.read_bytes())), "0")] * 2


async def test_stale_progress_record_is_ignored(cdn, files, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "consolidated.00.pth.partial").write_bytes(b"x" * 10)
    (out / "consolidated.00.pth.partial.json").write_text(json.dumps({"size": 10, "part_size": PART, "done": [10]}))
    [path] = await fetch_files(_remote(cdn, "consolidated.00.pth"), out, options=OPTIONS)
    assert path.read_bytes() == files["consolidated.00.pth"]
    assert sorted(p.name for p in out.iterdir()) == ["consolidated.00.pth"]


async def test_finished_file_of_known_size_is_not_asked_for(cdn, files, tmp_path):
    (tmp_path / "params.json").write_bytes(files["params.json"])
    [remote] = _remote(cdn, "params.json")
    progress = Recorder()
    await fetch_files([RemoteFile(remote.name, remote.url, size=29)], tmp_path, options=OPTIONS, progress=progress)
    assert cdn.requests == []
    assert progress.events == [("note", "params.json is already downloaded; skipping.")]


async def test_403_is_not_retried(cdn, tmp_path):
    cdn.expire()
    with pytest.raises(DownloadError, match=r"^Downloading params.json failed: the server answered 403 for http://127.0.0.1:\d+/Llama-3.2-1B/params.json\?…\.$"):
        await fetch_files(_remote(cdn, "params.json"), tmp_path, options=OPTIONS)
    assert len(cdn.requests) == 1


@pytest.mark.parametrize(
    "text, redacted",
    [
        ("GET https://x.llamameta.net/a/b.pth?Policy=P&Signature=S&Key-Pair-Id=K done", "GET https://x.llamameta.net/a/b.pth?… done"),
        ("http://127.0.0.1:80/*?Signature=abc", "http://127.0.0.1:80/*?…"),
        ("at http://h/x?Signature=a.b/c. Then (http://h/y?K=1).", "at http://h/x?…. Then (http://h/y?…)."),
        ("no url here?Signature=abc", "no url here?Signature=abc"),
        ("https://huggingface.co/meta-llama/x", "https://huggingface.co/meta-llama/x"),
    ],
    ids=["signed", "loopback", "punctuation", "no-url", "no-query"],
)
def test_redact(text, redacted):
    assert redact(text) == redacted


def test_file_url_replaces_the_star_of_the_path_only():
    url = "https://llama3-2.llamameta.net/*?Policy=eyJ*Q&Signature=a*b&Key-Pair-Id=K"
    assert file_url(url, "Llama-3.2-1B", "params.json") == (
        "https://llama3-2.llamameta.net/Llama-3.2-1B/params.json?Policy=eyJ*Q&Signature=a*b&Key-Pair-Id=K"
    )


def test_url_expiry_from_policy_and_expires(cdn):
    assert url_expiry("https://x.net/*?Expires=1727000000&Signature=s") == dt.datetime(2024, 9, 22, 10, 13, 20, tzinfo=dt.UTC)
    expiry = url_expiry(cdn.signed_url(expires_in=3600))
    assert expiry is not None and 3500 < (expiry - dt.datetime.now(dt.UTC)).total_seconds() <= 3600
    assert url_expiry("https://x.net/*?Policy=not-base64-json") is None


def test_check_signed_url():
    check_signed_url("https://x.net/*?Expires=1727000000", now=dt.datetime(2024, 9, 22, tzinfo=dt.UTC))
    with pytest.raises(DownloadError, match=r"^The signed URL expired at 2024-09-22 10:13 UTC\. Request a new link"):
        check_signed_url("https://x.net/*?Expires=1727000000", now=dt.datetime(2024, 9, 23, tzinfo=dt.UTC))
    with pytest.raises(InvalidRequestError, match=r"^The --meta-url must be the https:// link"):
        check_signed_url("llama3-2.llamameta.net/*?Signature=s")
