"""A turn's attachments as files: read once before the turn starts, then given to the code
interpreter (written into the session's scratch folder) and to retrieval.

    files = await read_attachments(request.attachments)    # 400/413 before any stream opens
    names = await anyio.to_thread.run_sync(write_files, files, scratch)
    message = files_message(names)                          # appended to the turn's messages

An attachment is inline text, a data: URL, or an http(s) URL fetched once (at most MAX_BYTES,
within FETCH_TIMEOUT_S; llama_core.providers.memory.documents.fetch_url, which also caps a
compressed body after decompression). A file:// URL is refused: the server's files are not the
client's to name.

A file's name is the URL path's last segment when that is a tame file name (letters, digits, '.',
'_', '-', not starting with '.'), else `attachment` with its media type's extension; a name the
folder has already gets `-2`, `-3`... before its extension. Files are created exclusively (a link
the sandboxed code left in the folder is never followed). The model is told each file's path as the
sandbox sees it, in an ipython message, one line each, as the reference did:

    # There is a file accessible to you at "/tmp/scratch/data.csv"
"""

from __future__ import annotations

import base64
import mimetypes
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from llama_core.errors import InvalidRequestError, PayloadTooLargeError, shown
from llama_core.providers.agents.sandbox import SCRATCH_MOUNT
from llama_core.providers.memory.documents import data_url, fetch_url, media_type
from llama_core.redact import redact
from llama_core.types.agents import Attachment
from llama_core.types.common import URL, content_text
from llama_core.types.messages import BuiltinTool, ToolResponseMessage

MAX_BYTES = 16 * 2**20  # one attachment, as a request body at most
FETCH_TIMEOUT_S = 30.0
_TAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True, slots=True)
class File:
    """One attachment's bytes, its media type ("type/subtype; charset=..." or ""), its name, and
    the type its source declared (a server's Content-Type, a data: URL's; "" for inline text)."""

    name: str
    data: bytes
    mime_type: str
    source_type: str = ""

    def as_attachment(self, original: Attachment) -> Attachment:
        """The attachment for retrieval: inline text as sent, a URL's bytes as a data: URL (no second
        fetch) typed as its source was, so retrieval reads it as it would have read the URL."""
        if not isinstance(original.content, URL):
            return original
        declared = self.source_type if "," not in self.source_type else ""  # a comma would end the data: URL's header
        encoded = base64.b64encode(self.data).decode()
        return Attachment(content=URL(uri=f"data:{declared};base64,{encoded}"), mime_type=original.mime_type)


def _name(uri: str | None, kind: str) -> str:
    if uri is not None:
        base = unquote(posixpath.basename(urlsplit(uri).path))
        if _TAME.fullmatch(base):
            return base
    extension = mimetypes.guess_extension(kind) if kind else None
    return "attachment" + (extension or (".txt" if kind.startswith("text/") or not kind else ".bin"))


async def _read(attachment: Attachment) -> File:
    """One attachment's File; errors' fields relative to the attachment."""
    kind, _ = media_type(attachment.mime_type)
    if not isinstance(attachment.content, URL):
        text = content_text(attachment.content)
        if not text.strip():
            raise InvalidRequestError("The attachment has no text.", field="content")
        data = text.encode()
        if len(data) > MAX_BYTES:
            raise PayloadTooLargeError(f"An attachment has more than {MAX_BYTES // 2**20} MiB of text.")
        return File(_name(None, kind), data, attachment.mime_type)
    uri = attachment.content.uri
    scheme = urlsplit(uri).scheme.lower()
    if scheme == "data":
        data, declared = data_url(uri, MAX_BYTES)
        if not data:
            raise InvalidRequestError("The attachment's data: URL holds no data.", field="content.uri")
        kind = kind or media_type(declared, "content.uri")[0]
        return File(_name(None, kind), data, attachment.mime_type or declared or "", declared or "")
    if scheme in ("http", "https"):
        data, declared = await fetch_url(uri, MAX_BYTES, FETCH_TIMEOUT_S)
        if not data:
            raise InvalidRequestError(f"The attachment at {shown(redact(uri), 120)} is empty.", field="content.uri")
        return File(_name(uri, kind), data, attachment.mime_type or declared or "", declared or "")
    raise InvalidRequestError(f"An attachment's URL must be http(s) or data:, not {shown(scheme, 20)}:.", field="content.uri")


async def read_attachments(attachments: list[Attachment]) -> list[File]:
    """Each attachment's File, in order. InvalidRequestError (400, field `attachments[i]...`) for
    one that cannot be read; PayloadTooLargeError (413) past MAX_BYTES."""
    files = []
    for i, attachment in enumerate(attachments):
        try:
            files.append(await _read(attachment))
        except InvalidRequestError as e:
            field = f"attachments[{i}].{e.field}" if e.field else f"attachments[{i}]"
            raise type(e)(e.message, field=field) from None
    return files


def write_files(files: list[File], scratch: Path) -> list[str]:
    """Write `files` into `scratch` (created if need be), each under a name it does not have yet; their names."""
    scratch.mkdir(parents=True, exist_ok=True)
    names = []
    for file in files:
        stem, dot, extension = file.name.partition(".")
        name, n = file.name, 1
        while True:
            try:
                fd = os.open(scratch / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
                break
            except FileExistsError:
                n += 1
                name = f"{stem}-{n}{dot}{extension}"
        with os.fdopen(fd, "wb") as out:
            out.write(file.data)
        names.append(name)
    return names


def files_message(names: list[str]) -> ToolResponseMessage:
    """The ipython message that tells the model where the files are, in the sandbox's view."""
    lines = "".join(f'# There is a file accessible to you at "{SCRATCH_MOUNT}/{name}"\n' for name in names)
    return ToolResponseMessage(call_id="", tool_name=BuiltinTool.code_interpreter, content=lines)
