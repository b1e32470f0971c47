"""`llama download --source meta` against the fake CDN: resume, expiry, 404, lost network, disk space, checksums."""

from __future__ import annotations

import io
import logging
import shutil
from collections import namedtuple
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


from download.cdn import FakeCDN
from download.conftest import FOLDER, MODEL, PART
from llama_core import paths

SHARD = f"/{FOLDER}/consolidated.00.pth"


def _secrets(url: str) -> list[str]:
    """The parts of a signed URL that must never be printed."""
    query = parse_qs(urlsplit(url).query)
    return [query["Signature"][0], query["Policy"][0], url]


def _data_requests(cdn: FakeCDN) -> list[tuple[str, str | None]]:
    """(path, Range) of every GET except the one-byte probes."""
    return [(path, r) for method, path, r in cdn.requests if method == "GET" and r != "bytes=0-0"]


def _assert_identical(dest: Path, files: dict[str, bytes]) -> None:
    assert sorted(p.name for p in dest.iterdir()) == sorted([*files, "checklist.chk"])
    for name, data in files.items():
        assert (dest / name).read_bytes() == data, name


def test_download_fetches_every_file_and_says_where(llama, cdn, files):
    url = cdn.signed_url()
    rc, out, err = llama("download", "--source", "meta", "--model-id", MODEL, meta_url=url)
    dest = paths.model_checkpoint_dir(MODEL)
    assert rc == 0
    assert sorted(err.splitlines()) == [
        "Checking md5 sums against checklist.chk.",
        "Downloaded checklist.chk (156 B)",
        "Downloaded consolidated.00.pth (3.7 MB)",
        "Downloaded params.json (29 B)",
        "Downloaded tokenizer.model (2.0 KB)",
    ]
    assert out == f"Successfully downloaded model to {dest}\nMD5 Checksums are at: {dest / 'checklist.chk'}\n"
    _assert_identical(dest, files)
    # One probe per file (CloudFront refuses HEAD), then 1 MiB ranged parts; no HEAD at all.
    assert sorted(r for m, _, r in cdn.requests if m == "GET" and r == "bytes=0-0") == ["bytes=0-0"] * 4
    shard = sorted(r for p, r in _data_requests(cdn) if p == SHARD)
    assert shard == ["bytes=0-1048575", "bytes=1048576-2097151", "bytes=2097152-3145727", "bytes=3145728-3670015"]
    assert not any(secret in out + err for secret in _secrets(url))


WARNING = "warning: --meta-url on the command line is visible to other users in `ps`; use LLAMA_META_URL instead"


def test_meta_url_as_an_argument_works_with_a_warning(llama, cdn, files):
    url = cdn.signed_url()
    rc, _, err = llama("download", "-m", MODEL, "--meta-url", url)
    assert rc == 0, err
    assert err.splitlines()[0] == WARNING and err.count("warning:") == 1
    assert not any(secret in err for secret in _secrets(url))
    _assert_identical(paths.model_checkpoint_dir(MODEL), files)


def test_meta_url_from_stdin(llama, cdn, files, monkeypatch):
    url = cdn.signed_url()
    monkeypatch.setattr("sys.stdin", io.StringIO(url + "\n"))
    rc, _, err = llama("download", "-m", MODEL, "--meta-url", "-")
    assert rc == 0, err
    assert "warning" not in err and not any(secret in err for secret in _secrets(url))
    _assert_identical(paths.model_checkpoint_dir(MODEL), files)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert llama("download", "-m", MODEL, "--meta-url", "-") == (2, "", "Error: --meta-url - reads the value from stdin, but stdin gave none.\n")


def test_cut_connection_resumes_from_where_it_stopped(llama, cdn, files):
    cdn.cut(SHARD, PART + 12345)  # partway through the second part
    rc, _, err = llama("download", "-m", MODEL, meta_url=cdn.signed_url())
    assert rc == 0, err
    assert "consolidated.00.pth: RemoteProtocolError: peer closed connection" in err and "retry 1 of 2" in err
    assert (SHARD, f"bytes={PART + 12345}-{2 * PART - 1}") in _data_requests(cdn)  # only the missing bytes
    _assert_identical(paths.model_checkpoint_dir(MODEL), files)


def test_interrupted_download_resumes_on_the_next_run(llama, cdn, files):
    at = PART + PART // 2
    for _ in range(3):  # the first try and both retries die at the same byte: the run gives up
        cdn.cut(SHARD, at)
    rc, out, err = llama("download", "-m", MODEL, "--max-parallel", "1", meta_url=cdn.signed_url())
    dest = paths.model_checkpoint_dir(MODEL)
    assert (rc, out) == (1, "")
    assert err.splitlines()[-1] == (
        "Error: Network error while downloading consolidated.00.pth (RemoteProtocolError: peer closed connection "
        "without sending complete message body (received 0 bytes, expected 524288)), 3 tries. "
        "Check the connection and run the same command again: it resumes where it stopped."
    )
    assert (dest / "consolidated.00.pth.partial").exists() and (dest / "consolidated.00.pth.partial.json").exists()
    assert not (dest / "consolidated.00.pth").exists()

    cdn.requests.clear()
    rc, _, err = llama("download", "-m", MODEL, "--max-parallel", "1", meta_url=cdn.signed_url())
    assert rc == 0, err
    # Finished files are skipped; the shard asks for the rest of part 1 and parts 2-3, nothing before.
    assert _data_requests(cdn) == [
        (SHARD, f"bytes={at}-{2 * PART - 1}"),
        (SHARD, f"bytes={2 * PART}-{3 * PART - 1}"),
        (SHARD, f"bytes={3 * PART}-{3 * PART + PART // 2 - 1}"),
    ]
    assert err.count("is already downloaded; skipping.") == 3
    _assert_identical(dest, files)


def test_expired_url_is_one_line_without_the_signature(llama, cdn):
    url = cdn.signed_url()
    cdn.expire()  # the server-side clock passes the policy's end
    rc, out, err = llama("download", "-m", MODEL, meta_url=url)
    assert (rc, out) == (1, "")
    assert err == (
        "Error: Meta's download server refused the signed URL (403 Forbidden): it has expired or was not issued "
        f"for {MODEL}. Request a new link at https://www.llama.com/llama-downloads/ (links last 24 hours) and run "
        "the command again; finished files are kept.\n"
    )
    assert "Traceback" not in err and not any(secret in err for secret in _secrets(url))


def test_url_past_its_policy_date_fails_before_any_request(llama, cdn):
    url = cdn.signed_url(expires_in=-3600)
    rc, out, err = llama("download", "-m", MODEL, meta_url=url)
    assert (rc, out, cdn.requests) == (1, "", [])
    assert err.startswith("Error: The signed URL expired at ") and err.count("\n") == 1
    assert not any(secret in err for secret in _secrets(url))


def test_model_missing_behind_the_url_is_404(llama, cdn):
    rc, _, err = llama("download", "-m", "Llama3.2-3B", meta_url=cdn.signed_url())
    assert rc == 1
    assert err == (
        f"Error: checklist.chk was not found at {cdn.base}/Llama-3.2-3B/…?… (404): this signed URL does not seem to "
        "cover Llama3.2-3B. Check the model id, or request a link for it at https://www.llama.com/llama-downloads/.\n"
    )


def test_lost_network_is_one_line(llama, cdn):
    url = cdn.signed_url()
    cdn.__exit__()  # nothing listens there any more
    rc, _, err = llama("download", "-m", MODEL, meta_url=url)
    assert rc == 1
    last = err.splitlines()[-1]
    assert last.startswith("Error: Network error while downloading ") and "ConnectError" in last
    assert last.endswith("3 tries. Check the connection and run the same command again: it resumes where it stopped.")
    assert not any(secret in err for secret in _secrets(url))


def test_disk_space_is_checked_before_fetching(llama, cdn, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1_000_000, 1_000_000))
    rc, _, err = llama("download", "-m", MODEL, meta_url=cdn.signed_url())
    dest = paths.model_checkpoint_dir(MODEL)
    assert rc == 1
    assert err == (
        f"Error: Not enough disk space in {dest}: the download needs 3.7 MB more, 1.0 MB is free. "
        "Free some space (or set LLAMA_STACK_CONFIG_DIR) and run it again.\n"
    )
    assert _data_requests(cdn) == [] and not dest.exists()  # only the probes went out; no empty folder left


def test_bad_checksum_at_the_end_removes_the_file(llama, cdn, tmp_path):
    shard = tmp_path / "cdn" / FOLDER / "consolidated.00.pth"
    shard.write_bytes(b"\0" + shard.read_bytes()[1:])  # the CDN serves bytes that checklist.chk does not vouch for
    rc, _, err = llama("download", "-m", MODEL, meta_url=cdn.signed_url())
    assert rc == 1
    assert err.splitlines(keepends=True)[-1] == (
        "Error: Checksum check against checklist.chk failed: consolidated.00.pth (checksum mismatch). "
        "Removed; run the command again to fetch again.\n"
    )
    assert not (paths.model_checkpoint_dir(MODEL) / "consolidated.00.pth").exists()


def test_url_without_star_is_a_usage_error(llama):
    rc, _, err = llama("download", "-m", MODEL, meta_url="https://llama3-2.llamameta.net/?Policy=abc&Signature=xyz")
    assert rc == 2
    assert err == (
        "Error: The --meta-url https://llama3-2.llamameta.net/?… has no '*' in its path: paste the whole link "
        "from Meta's e-mail (quote it in the shell).\n"
    )


def test_missing_meta_url_without_a_terminal(llama):
    rc, _, err = llama("download", "-m", MODEL)
    assert rc == 2 and err.startswith("Error: --meta-url is required with --source meta")


def test_demo_model_is_not_on_metas_cdn(llama, cdn):
    rc, _, err = llama("download", "--source", "meta", "-m", "SmolLM2-135M-Instruct", meta_url=cdn.signed_url())
    assert rc == 2 and "is not distributed through Meta's signed URLs" in err and cdn.requests == []


def test_httpx_request_log_is_redacted(llama, cdn, caplog):
    url = cdn.signed_url()
    with caplog.at_level(logging.DEBUG):
        rc, _, _ = llama("download", "-m", MODEL, meta_url=url)
    assert rc == 0
    assert "HTTP Request: GET" in caplog.text and "Policy=" not in caplog.text
    assert not any(secret in caplog.text for secret in _secrets(url))


def test_max_parallel_must_be_positive(llama, cdn):
    rc, _, err = llama("download", "-m", MODEL, "--max-parallel", "0", meta_url=cdn.signed_url())
    assert (rc, err, cdn.requests) == (2, "Error: --max-parallel must be at least 1, not 0.\n", [])
