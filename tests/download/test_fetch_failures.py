"""`llama download` when the CDN says "not now", DNS says "no such host", or the disk fills up mid-download."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from download.conftest import FOLDER, MODEL
from llama_core import paths

SHARD = f"/{FOLDER}/consolidated.00.pth"


@pytest.mark.parametrize(
    ("status", "retry_after", "note"),
    [
        (500, None, "consolidated.00.pth: the server answered 500 Internal Server Error; retry 1 of 2 in 0.0s"),
        (503, None, "consolidated.00.pth: the server answered 503 Service Unavailable; retry 1 of 2 in 0.0s"),
        # Retry-After is honoured: the wait is the server's, not our backoff's
        (429, "1", "consolidated.00.pth: the server answered 429 Too Many Requests, asking to retry after 1 s; "
                   "retry 1 of 2 in 1.0s"),
    ],
)
def test_a_busy_cdn_is_retried_and_said_in_words(llama, cdn, files, status, retry_after, note):
    cdn.refuse(SHARD, status, retry_after)
    rc, _, err = llama("download", "-m", MODEL, meta_url=cdn.signed_url())
    assert rc == 0, err
    assert note in err.splitlines()
    assert (paths.model_checkpoint_dir(MODEL) / "consolidated.00.pth").read_bytes() == files["consolidated.00.pth"]


def test_a_retry_after_beyond_our_patience_is_one_line(llama, cdn):
    cdn.refuse(SHARD, 429, "3600")
    rc, _, err = llama("download", "-m", MODEL, meta_url=cdn.signed_url())
    assert rc == 1
    assert err.splitlines()[-1] == (
        "Error: Downloading consolidated.00.pth: the server answered 429 Too Many Requests, asking to retry after "
        "3600 s; that is longer than we wait (30 s). Run the same command again later: it resumes where it stopped."
    )


def test_a_cdn_that_stays_broken_is_one_line(llama, cdn):
    for _ in range(3):  # the tests' 2 retries: 3 tries
        cdn.refuse(SHARD, 502)
    rc, _, err = llama("download", "-m", MODEL, meta_url=cdn.signed_url())
    assert rc == 1
    assert err.splitlines()[-1] == (
        "Error: Downloading consolidated.00.pth failed: the server answered 502 Bad Gateway, 3 tries. "
        "Run the same command again later: it resumes where it stopped."
    )
    assert "_RetryableStatus" not in err


def test_an_unresolvable_host_is_final_at_once_and_leaves_no_folder(llama, cdn):
    url = cdn.signed_url().replace(cdn.base.removeprefix("http://"), "cdn.example.invalid")
    rc, _, err = llama("download", "-m", MODEL, meta_url=url)
    assert (rc, err) == (1, "Error: Cannot resolve the host name cdn.example.invalid (DNS) to download checklist.chk: "
                            "check the URL and the network.\n")
    assert not paths.model_checkpoint_dir(MODEL).exists()  # no empty folder left behind


def _can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs `unshare -rm` to mount a small tmpfs (user namespaces)")
def test_a_disk_that_fills_up_mid_download_is_one_line_and_resumes(cdn, files, tmp_path: Path):
    # A real full disk: ~/.llama on an 8 MiB tmpfs in a private mount namespace. Once the shard's
    # .partial exists (created sparse: it takes no space yet), a filler takes every free block,
    # so the next bytes written (and the part record) meet ENOSPC.
    home = tmp_path / "home"
    home.mkdir()
    cdn.rate = 256 * 1024  # bytes/s per stream: the download is still under way when the disk fills
    partial = home / "checkpoints" / MODEL / "consolidated.00.pth.partial"
    script = f"""
        mount -t tmpfs -o size=8m tmpfs {home} || exit 99
        "$PYTHON" -m llama_cli download -m {MODEL} &
        while [ ! -e {partial} ]; do sleep 0.02; done
        dd if=/dev/zero of={home}/filler bs=64k 2>/dev/null
        wait $!
        status=$?
        leftovers=$(find {home} -name '*.tmp' | wc -l)
        rm {home}/filler
        echo "leftovers=$leftovers" >&2
        "$PYTHON" -m llama_cli download -m {MODEL} >/dev/null 2>&1 && cmp -s {home}/checkpoints/{MODEL}/consolidated.00.pth "$SHARD" && echo resumed >&2
        exit $status
    """
    env = os.environ | {"PYTHON": sys.executable, "LLAMA_STACK_CONFIG_DIR": str(home), "LLAMA_META_URL": cdn.signed_url(),
                        "SHARD": str(tmp_path / "cdn" / FOLDER / "consolidated.00.pth")}
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=120)
    lines = done.stderr.splitlines()
    assert done.returncode == 1, done.stderr
    assert f"Error: The disk is full in {home / 'checkpoints' / MODEL}: free some space (or set LLAMA_STACK_CONFIG_DIR) " \
           "and run the same command again; it resumes where it stopped." in lines
    assert "Traceback" not in done.stderr and "unexpected" not in done.stderr
    assert "leftovers=0" in lines  # no 0-byte *.partial.json.tmp
    assert lines[-1] == "resumed"
