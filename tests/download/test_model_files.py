"""`llama model verify-download | remove | list --downloaded`, and the checksum lists behind them."""

from __future__ import annotations

import json
import os

import pytest

from download.conftest import MODEL, model_files, write_model
from llama_core import paths
from llama_core.download import human_size
from llama_core.download.verify import parse_manifest
from llama_core.errors import CheckpointError


def test_corrupted_download_fails_verify_naming_the_file(llama, cdn):
    rc, _, err = llama("download", "-m", MODEL, "--meta-url", cdn.signed_url())
    assert rc == 0, err
    shard = paths.model_checkpoint_dir(MODEL) / "consolidated.00.pth"
    with shard.open("r+b") as f:  # flip one byte in the middle
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    rc, out, err = llama("model", "verify-download", "--model-id", MODEL)
    assert rc == 1
    assert "| consolidated.00.pth | md5      | ✗ checksum mismatch |" in out
    assert "| tokenizer.model     | md5      | ✓ ok                |" in out
    assert err == (
        f"Error: 1 of 3 files in {shard.parent} failed verification: consolidated.00.pth (checksum mismatch). "
        "Download the model again.\n"
    )


def test_verify_reports_missing_and_ok(llama):
    folder = paths.model_checkpoint_dir(MODEL)
    write_model(folder, model_files())
    rc, out, _ = llama("model", "verify-download", "-m", "Meta-Llama3.2-1B")  # an older spelling resolves too
    assert rc == 0 and out.endswith("All 3 files match their checksums.\n")
    (folder / "params.json").unlink()
    rc, out, err = llama("model", "verify-download", "-m", MODEL)
    assert rc == 1 and "| params.json         | md5      | ✗ missing |" in out
    assert "failed verification: params.json (missing)." in err


def test_verify_without_checksum_list(llama):
    folder = paths.model_checkpoint_dir(MODEL)
    folder.mkdir(parents=True)
    (folder / "params.json").write_text("{}")
    rc, _, err = llama("model", "verify-download", "-m", MODEL)
    assert rc == 1
    assert err == (
        f"Error: {folder} has no checksum list (checklist.chk or checksums.sha256), so its files cannot be verified; "
        "download the model again.\n"
    )


def test_verify_not_downloaded(llama):
    rc, _, err = llama("model", "verify-download", "-m", MODEL)
    assert rc == 2
    assert err == (
        f"Error: {MODEL} is not downloaded (no folder {paths.model_checkpoint_dir(MODEL)}). "
        f"Run `llama download --model-id {MODEL}`.\n"
    )


@pytest.mark.parametrize(
    "line, expected",
    [
        ("d41d8cd98f00b204e9800998ecf8427e  ./params.json", ("params.json", "d41d8cd98f00b204e9800998ecf8427e")),
        ("D41D8CD98F00B204E9800998ECF8427E *original/x.pth", ("original/x.pth", "d41d8cd98f00b204e9800998ecf8427e")),
        ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a.bin", ("a.bin", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")),
    ],
    ids=["md5", "binary-mode-upper", "sha256"],
)
def test_parse_manifest(line, expected):
    assert parse_manifest(line + "\n\n") == [expected]


def test_parse_manifest_rejects_garbage():
    with pytest.raises(CheckpointError, match=r"^checklist.chk line 2 is not '<checksum>  <file>': 'oops'$"):
        parse_manifest("d41d8cd98f00b204e9800998ecf8427e  ./a\noops\n")


def test_list_downloaded_shows_size_on_disk(llama):
    assert llama("model", "list", "--downloaded")[1] == (
        "No models downloaded yet. Get one with `llama download --model-id SmolLM2-135M-Instruct`.\n"
    )
    write_model(paths.model_checkpoint_dir(MODEL), model_files())
    custom = paths.checkpoints_dir() / "my-finetune"
    custom.mkdir()
    (custom / "consolidated.00.pth").write_bytes(b"\0" * 2_500_000)
    rc, out, _ = llama("model", "list", "--downloaded")
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("|")]
    assert rc == 0
    assert [r[:2] for r in rows] == [["Model", "Size"], [MODEL, "3.7 MB"], ["my-finetune", "2.5 MB"]]
    assert rows[1][3] == str(paths.model_checkpoint_dir(MODEL))
    rc, out, _ = llama("model", "list", "--downloaded", "--json")
    data = json.loads(out)
    # 2000 + 29 + 3.5 MiB + the 156-byte checklist.chk
    assert [(d["model"], d["size"]) for d in data] == [(MODEL, 3_672_201), ("my-finetune", 2_500_000)]
    assert human_size(3_672_201) == "3.7 MB"


@pytest.mark.parametrize(
    "n, text",
    [(0, "0 B"), (999, "999 B"), (1536, "1.5 KB"), (16_060_522_496, "16.06 GB"), (2 * 10**15, "2000.00 TB")],
    ids=["zero", "bytes", "kb", "gb", "tb"],
)
def test_human_size(n, text):
    assert human_size(n) == text


def test_remove(llama):
    folder = paths.model_checkpoint_dir(MODEL)
    write_model(folder, model_files())
    rc, _, err = llama("model", "remove", "-m", MODEL)  # no terminal to confirm on
    assert (rc, err) == (2, f"Error: Not removing {folder} without confirmation: add --force.\n")
    assert folder.is_dir()
    rc, out, _ = llama("model", "remove", "-m", MODEL, "--force")
    assert (rc, out) == (0, f"Removed {folder} (3.7 MB).\n")
    assert not folder.exists() and paths.checkpoints_dir().is_dir()
    rc, _, err = llama("model", "remove", "-m", MODEL, "-f")
    assert rc == 2 and err.startswith(f"Error: {MODEL} is not downloaded")


@pytest.mark.parametrize("model_id", ["..", "../checkpoints", "/tmp"], ids=["dotdot", "relative", "absolute"])
def test_remove_never_leaves_the_checkpoints_dir(llama, model_id):
    paths.checkpoints_dir().mkdir(parents=True)
    rc, _, err = llama("model", "remove", "-m", model_id, "-f")
    assert rc == 2 and err.startswith(f"Error: Unknown model '{model_id}'")
    assert paths.checkpoints_dir().is_dir() and os.path.isdir("/tmp")



def test_remove_a_symlinked_folder_removes_the_link_and_keeps_its_target(llama, tmp_path):
    target = tmp_path / "elsewhere" / MODEL
    write_model(target, model_files())
    paths.checkpoints_dir().mkdir(parents=True)
    link = paths.model_checkpoint_dir(MODEL)
    link.symlink_to(target, target_is_directory=True)
    rc, out, err = llama("model", "remove", "-m", MODEL, "-f")
    assert (rc, out, err) == (0, f"Removed the link {link}; its target {target} (3.7 MB) is kept.\n", "")
    assert not link.exists() and not link.is_symlink()
    assert sorted(p.name for p in target.iterdir()) == sorted([*model_files(), "checklist.chk"])
