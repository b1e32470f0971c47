"""`llama download` of a model that is already there: verified, not fetched again; `--force` fetches it again."""

from __future__ import annotations

from download.cdn import FakeCDN
from download.conftest import MODEL
from llama_core import paths


def _data_requests(cdn: FakeCDN) -> int:
    return sum(1 for method, _, r in cdn.requests if method == "GET" and r != "bytes=0-0")


def test_a_model_already_there_is_verified_not_fetched(llama, cdn, files):
    url = cdn.signed_url()
    assert llama("download", "-m", MODEL, meta_url=url)[0] == 0
    dest = paths.model_checkpoint_dir(MODEL)
    fetched = len(cdn.requests)

    rc, out, err = llama("download", "-m", MODEL, meta_url=url)
    assert rc == 0
    assert err == (
        f"{MODEL} is already downloaded; verifying its checksums.\n"
        "All 3 files match their checksums: nothing to download (--force downloads it again).\n"
    )
    assert out == f"The model is in {dest}\n"  # where it is, once; not "downloaded"
    assert len(cdn.requests) == fetched  # not one request

    # a damaged file is fetched again, the others kept
    (dest / "params.json").write_bytes(b"{}")
    rc, out, err = llama("download", "-m", MODEL, meta_url=url)
    assert rc == 0, err
    assert "params.json (checksum mismatch): downloading again." in err.splitlines()
    assert out == f"Successfully downloaded model to {dest}\nMD5 Checksums are at: {dest / 'checklist.chk'}\n"
    assert (dest / "params.json").read_bytes() == files["params.json"]
    assert [r for m, p, r in cdn.requests[fetched:] if m == "GET" and p.endswith("consolidated.00.pth") and r != "bytes=0-0"] == []

    before = _data_requests(cdn)
    rc, _, err = llama("download", "-m", MODEL, "--force", meta_url=url)
    assert rc == 0, err
    assert "already" not in err
    assert _data_requests(cdn) - before == 4 + 3  # every file again: checklist, params, tokenizer, 4 parts of the shard
    for name, data in files.items():
        assert (dest / name).read_bytes() == data
