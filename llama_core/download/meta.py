"""Meta's signed download URLs: check one, turn it into per-file URLs, fetch a SKU, verify checklist.chk.

The URL from Meta's e-mail looks like `https://llama3-2.llamameta.net/*?Policy=...&Signature=...&Key-Pair-Id=...`:
a CloudFront signed URL whose `*` stands for `<folder>/<file>`. It is a credential for 24 hours; it is
never printed whole (only `redact`ed), in errors, notes or logs.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from llama_core.download.fetch import FetchOptions, Progress, fetch_files, redact
from llama_core.download.partial import RemoteFile
from llama_core.download.verify import FileStatus, verify_files
from llama_core.errors import CheckpointError, DownloadError, InvalidRequestError
from llama_core.models import Model, meta_net_info

NEW_URL_HINT = "Request a new link at https://www.llama.com/llama-downloads/ (links last 24 hours) and run the command again"
URL_PROMPT = "Please provide the signed URL you received via email (e.g., https://llama3-1.llamameta.net/*?Policy...): "

# Non-retryable statuses from the CDN -> what the user should know. {file}, {model} and {where} are filled in.
STATUS_MESSAGES = {
    400: "Meta's download server rejected the request for {file} (400 Bad Request): is the whole signed URL quoted?",
    401: "Meta's download server refused the signed URL (401 Unauthorized). " + NEW_URL_HINT + ".",
    403: "Meta's download server refused the signed URL (403 Forbidden): it has expired or was not issued for {model}. "
    + NEW_URL_HINT
    + "; finished files are kept.",
    404: "{file} was not found at {where} (404): this signed URL does not seem to cover {model}. "
    "Check the model id, or request a link for it at https://www.llama.com/llama-downloads/.",
    410: "Meta's download server says the signed URL is gone (410). " + NEW_URL_HINT + ".",
}


def check_signed_url(url: str, now: dt.datetime | None = None) -> None:
    """Raise a one-line error if `url` cannot be a signed URL (no `*`, not http(s)) or has expired.

    The expiry is read from the CloudFront policy (`Policy`, `DateLessThan`) or `Expires` parameter.
    """
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - a port out of range or not a number raises here, not in httpx
    except ValueError:  # "Invalid IPv6 URL", a bad port
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequestError("The --meta-url must be the https:// link from Meta's e-mail.", field="meta_url")
    if "*" not in parts.path:
        raise InvalidRequestError(
            f"The --meta-url {redact(url)} has no '*' in its path: paste the whole link from Meta's e-mail "
            "(quote it in the shell).",
            field="meta_url",
        )
    expiry = url_expiry(url)
    now = now or dt.datetime.now(dt.UTC)
    if expiry is not None and expiry <= now:
        raise DownloadError(f"The signed URL expired at {expiry:%Y-%m-%d %H:%M} UTC. {NEW_URL_HINT}.")


def url_expiry(url: str) -> dt.datetime | None:
    """When a CloudFront signed URL stops working, from its policy or `Expires`; None if it does not say."""
    query = parse_qs(urlsplit(url).query)
    seconds: object = None
    if "Policy" in query:
        # CloudFront's URL-safe base64: '+' -> '-', '=' -> '_', '/' -> '~'.
        raw = query["Policy"][0].translate(str.maketrans("-_~", "+=/"))
        try:
            policy = json.loads(base64.b64decode(raw + "=" * (-len(raw) % 4)))
            seconds = policy["Statement"][0]["Condition"]["DateLessThan"]["AWS:EpochTime"]
        except (ValueError, KeyError, IndexError, TypeError):
            return None
    elif "Expires" in query:
        seconds = query["Expires"][0]
    try:
        return dt.datetime.fromtimestamp(int(seconds), dt.UTC) if seconds is not None else None  # type: ignore[call-overload]
    except (ValueError, OverflowError, OSError):
        return None


def file_url(meta_url: str, folder: str, name: str) -> str:
    """The signed URL of one file: the `*` of the path becomes `folder/name` (the query is untouched)."""
    base, sep, query = meta_url.strip().partition("?")
    return base.replace("*", f"{folder}/{name}", 1) + sep + query


def remote_files(model: Model, meta_url: str) -> list[RemoteFile]:
    """The files of `model` behind `meta_url`, checklist.chk first."""
    info = meta_net_info(model)
    return [
        RemoteFile(name=name, url=file_url(meta_url, info.folder, name), size=info.pth_size if name.endswith(".pth") else 0)
        for name in info.files
    ]


class _RedactFilter(logging.Filter):
    # httpx logs each request's full URL at INFO; keep the signature out of anyone's log files.
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(str(record.msg))
        record.args = tuple(redact(str(a)) if "://" in str(a) else a for a in record.args or ())
        return True


_FILTER = _RedactFilter()


def guard_logs() -> None:
    """Redact URLs in what httpx and httpcore log (idempotent)."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


async def download_meta(
    model: Model,
    meta_url: str,
    dest: Path,
    *,
    options: FetchOptions | None = None,
    progress: Progress | None = None,
) -> Path:
    """Fetch `model`'s files from Meta's CDN into `dest`, then check them against checklist.chk (md5).

    A file whose checksum does not match is deleted, so that running the command again fetches it anew.
    """
    check_signed_url(meta_url)
    files = remote_files(model, meta_url)
    where = redact(file_url(meta_url, meta_net_info(model).folder, "…"))

    def status_message(status: int, file: RemoteFile) -> str:
        template = STATUS_MESSAGES.get(status, "Meta's download server answered {status} for {file}.")
        return template.format(status=status, file=file.name, model=model.descriptor, where=where)

    guard_logs()
    options = dataclasses.replace(options or FetchOptions(), status_message=status_message)
    await fetch_files(files, dest, options=options, progress=progress)
    if progress is not None:
        progress.note("Checking md5 sums against checklist.chk.")
    checks = await verify_files(dest)
    bad = [c for c in checks if c.status != FileStatus.ok]
    for c in bad:
        (dest / c.name).unlink(missing_ok=True)
    if bad:
        names = ", ".join(f"{c.name} ({c.status})" for c in bad)
        raise CheckpointError(f"Checksum check against checklist.chk failed: {names}. Removed; run the command again to fetch again.")
    return dest
