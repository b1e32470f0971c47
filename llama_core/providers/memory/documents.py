"""The text of a memory-bank document, whatever form its content takes.

    text = await document_text(MemoryBankDocument(document_id="d1", content=URL(uri="https://example.com/a.pdf")))

Content comes as
- text: a string, or a list of text parts joined without separators (our Content type has no media
  parts: an image part is refused when the request is decoded, so nothing stands in for one);
- a `data:` URL, base64 or percent-encoded, its media type and charset honoured (RFC 2397);
- an http(s) URL, fetched with httpx: redirects followed (at most MAX_REDIRECTS, to http(s) only),
  the body streamed and cut off past `max_bytes` (413), the whole fetch bounded by `timeout_s`.
Any other scheme (file:, ftp:, javascript: ...) is a 400: a server must not read its own disk for
a client.

The media type is the document's `mime_type` if given, else the data: URL's or the server's
Content-Type; without one (or with application/octet-stream) a `%PDF-` header means PDF and
anything else is read as text. By type (CONVERTERS):
- text/html and XHTML: the text without tags; script and style dropped, blocks on their own lines;
- application/pdf: each page's text through pypdf, pages separated by a blank line; a PDF without
  a text layer (scanned images) is a 400;
- any other text/* type, and JSON, XML, YAML: the text as it is;
- anything else (images, archives, office files) is a 400.
Bytes are decoded by the charset of the media type (the document's, else the server's), else as
UTF-8 (a BOM is dropped); bytes that do not decode are a 400 naming the offset.

Errors: InvalidRequestError (400) whose `field` is relative to the document (`content.uri`,
`mime_type`, `content`), PayloadTooLargeError (413). Messages quote a URL without its query string
or password (llama_core.redact): signed URLs carry their signature there.

Non-goals: no OCR, no office formats, no charset sniffing from HTML <meta> tags, no cookies or
authentication toward the URL's server. A URL may point at this machine's own services (a stack
bound to loopback is used by its own user); put the server behind a proxy to restrict that.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import io
import re
from collections.abc import Callable
from html.parser import HTMLParser
from urllib.parse import unquote_to_bytes, urlsplit

import anyio
import anyio.to_thread

from llama_core.errors import InvalidRequestError, PayloadTooLargeError, shown
from llama_core.providers.http_body import read_capped
from llama_core.redact import redact
from llama_core.types import URL, content_text
from llama_core.types.memory import MemoryBankDocument

MAX_DOCUMENT_BYTES = 16 * 2**20  # a fetched body, a decoded data: URL or inline text: as the HTTP body limit
FETCH_TIMEOUT_S = 30.0  # one URL's whole fetch: connecting, redirects and the body
MAX_REDIRECTS = 5
DEFAULT_CHARSET = "utf-8"
PDF_MAGIC = b"%PDF-"
ACCEPT = "text/html, text/plain, text/markdown, application/pdf, text/*;q=0.9, */*;q=0.1"
USER_AGENT = "llama-toolchain (memory bank document fetch)"

# Types read as text although not text/*; and suffixes (RFC 6839) that mean the same.
TEXT_APPLICATION_TYPES = frozenset(
    {"application/json", "application/x-ndjson", "application/xml", "application/yaml", "application/x-yaml",
     "application/toml", "application/javascript", "application/x-sh", "application/x-python"}
)  # fmt: skip
TEXT_SUFFIXES = ("+json", "+xml", "+yaml")
# Types that say nothing about the bytes: the magic number decides.
UNTYPED = frozenset({"", "application/octet-stream", "binary/octet-stream"})

# Tags whose text is not the document's, and tags that end a line of text.
_SKIPPED_TAGS = frozenset({"script", "style", "noscript", "template"})
_BLOCK_TAGS = frozenset(
    {"address", "article", "aside", "blockquote", "br", "caption", "dd", "div", "dl", "dt", "figcaption", "figure",
     "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre",
     "section", "table", "title", "tr", "ul"}
)  # fmt: skip
_CELL_TAGS = frozenset({"td", "th"})


def _size(n: int) -> str:
    return f"{n // 2**20} MiB" if n % 2**20 == 0 else f"{n} bytes"


def _too_large(what: str, max_bytes: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"{what} is larger than {_size(max_bytes)}, the most a document may have.")


def _url_shown(uri: str) -> str:
    """`uri` fit to quote in a message: no query string, no password, cut if long."""
    return shown(redact(uri), 120)


# --- media types ------------------------------------------------------------------------------


def media_type(value: str | None, field: str = "mime_type") -> tuple[str, str | None]:
    """("type/subtype" lower-cased, charset or None) of a Content-Type or mime_type value; ("", None)
    for none. InvalidRequestError for a value that is not type/subtype or names an unknown charset."""
    if not value or not value.strip():
        return "", None
    kind, *params = (part.strip() for part in value.split(";"))
    kind = kind.lower()
    if kind and not re.fullmatch(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+", kind):
        raise InvalidRequestError(f"'{shown(value, 80)}' is not a media type such as text/plain.", field=field)
    charset = None
    for param in params:
        name, _, raw = param.partition("=")
        if name.strip().lower() == "charset" and raw.strip().strip("\"'"):
            charset = raw.strip().strip("\"'")
    if charset is not None:
        try:
            codecs.lookup(charset)
        except LookupError:
            raise InvalidRequestError(f"Unknown charset '{shown(charset, 40)}'.", field=field) from None
    return kind, charset


def decode_text(data: bytes, charset: str | None) -> str:
    """`data` decoded by `charset` (UTF-8 without one, a BOM dropped); a 400 naming the first bad byte."""
    name = charset or DEFAULT_CHARSET
    if codecs.lookup(name).name == "utf-8":
        name = "utf-8-sig"
    try:
        return data.decode(name)
    except UnicodeDecodeError as e:
        shown_name = charset or DEFAULT_CHARSET
        hint = "" if charset else " Give its charset in mime_type (e.g. text/plain; charset=latin-1)."
        raise InvalidRequestError(
            f"The document is not valid {shown_name}: byte 0x{data[e.start]:02x} at offset {e.start}.{hint}",
            field="mime_type",
        ) from None


class _TextOfHTML(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in _SKIPPED_TAGS:
            self.skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag in _CELL_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_text(html: str) -> str:
    """The text of an HTML page: no tags, scripts or styles; entities resolved; one line per block,
    runs of spaces as one, no blank lines."""
    parser = _TextOfHTML()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def pdf_text(data: bytes) -> str:
    """Each page's text, pages separated by a blank line. A 400 for bytes that are not a readable
    PDF, an encrypted one, or one with no text layer. Slow for big files: call from a worker thread."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise InvalidRequestError("The PDF is encrypted: send a copy without a password.", field="content")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except InvalidRequestError:
        raise
    except Exception:  # noqa: BLE001 -- pypdf raises a dozen kinds (PdfReadError, ValueError, KeyError...) on bad input
        raise InvalidRequestError("The document is not a readable PDF.", field="content") from None
    text = "\n\n".join(page for page in pages if page)
    if not text:
        raise InvalidRequestError(
            "The PDF has no text layer (its pages are images, as scans are): run OCR on it first, or send its text.",
            field="content",
        )
    return text


def _plain(data: bytes, charset: str | None) -> str:
    return decode_text(data, charset)


def _html(data: bytes, charset: str | None) -> str:
    return html_text(decode_text(data, charset))


def _pdf(data: bytes, charset: str | None) -> str:
    return pdf_text(data)


# media type -> how its bytes become text; text/* and TEXT_APPLICATION_TYPES not listed here are plain.
CONVERTERS: dict[str, Callable[[bytes, str | None], str]] = {
    "text/html": _html,
    "application/xhtml+xml": _html,
    "application/pdf": _pdf,
}


def converter(kind: str, data: bytes) -> Callable[[bytes, str | None], str]:
    """How bytes of media type `kind` ("" when unknown) become text; a 400 for a type we cannot read."""
    if kind in CONVERTERS:
        return CONVERTERS[kind]
    if kind in UNTYPED:
        return _pdf if data.startswith(PDF_MAGIC) else _plain
    if kind.startswith("text/") or kind in TEXT_APPLICATION_TYPES or kind.endswith(TEXT_SUFFIXES):
        return _plain
    raise InvalidRequestError(
        f"Documents of type {shown(kind, 80)} are not supported: send text (text/plain, text/markdown, "
        "text/html) or application/pdf.",
        field="mime_type",
    )


# --- sources ----------------------------------------------------------------------------------


def data_url(uri: str, max_bytes: int) -> tuple[bytes, str | None]:
    """(bytes, media type or None) of a `data:[<media type>][;base64],<data>` URL (RFC 2397)."""
    head, comma, payload = uri[len("data:") :].partition(",")
    if not comma:
        raise InvalidRequestError("The data: URL has no comma before its data.", field="content.uri")
    params = head.split(";")
    is_base64 = params[-1].strip().lower() == "base64"
    if is_base64:
        params.pop()
    if len(payload) > 4 * (max_bytes + 1):  # surely too big (%XX is 3 characters a byte, base64 4 per 3): not decoded
        raise _too_large("The data: URL's document", max_bytes)
    raw = unquote_to_bytes(payload)
    if is_base64:
        try:
            raw = base64.b64decode(re.sub(rb"\s+", b"", raw), validate=True)
        except binascii.Error:
            raise InvalidRequestError("The data: URL's base64 is malformed.", field="content.uri") from None
    if len(raw) > max_bytes:
        raise _too_large("The data: URL's document", max_bytes)
    return raw, ";".join(params) or None


# httpx's failures, in words that hold no URL (its messages may quote one, query string and all).
_FETCH_FAILURES: tuple[tuple[str, str], ...] = (
    ("ConnectTimeout", "could not connect in time"),
    ("ConnectError", "could not connect"),
    ("RemoteProtocolError", "the server broke the HTTP protocol"),
    ("ReadError", "the connection broke"),
    ("WriteError", "the connection broke"),
    ("ProxyError", "the proxy refused"),
)


async def fetch_url(uri: str, max_bytes: int, timeout_s: float) -> tuple[bytes, str | None]:
    """(body, Content-Type or None) of an http(s) URL. 413 past `max_bytes`; a 400 when it cannot be
    fetched within `timeout_s`, answers an error status, or redirects too often or off http(s)."""
    import httpx

    where = _url_shown(uri)

    def failed(why: str) -> InvalidRequestError:
        return InvalidRequestError(f"Fetching {where} failed: {why}.", field="content.uri")

    headers = {"Accept": ACCEPT, "User-Agent": USER_AGENT}
    try:
        with anyio.fail_after(timeout_s):  # httpx's timeouts are per read: a trickling server would pass them
            async with (
                httpx.AsyncClient(follow_redirects=True, max_redirects=MAX_REDIRECTS, timeout=timeout_s) as client,
                client.stream("GET", uri, headers=headers) as response,
            ):
                if not response.is_success:
                    raise failed(f"it answered {response.status_code} {response.reason_phrase}".rstrip())
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise _too_large(f"The document at {where}", max_bytes)
                body = await read_capped(response, max_bytes)
                if body is None:
                    raise _too_large(f"The document at {where}", max_bytes)
                return body, response.headers.get("content-type")
    except (TimeoutError, httpx.TimeoutException):
        raise failed(f"no answer within {timeout_s:g} s") from None
    except httpx.TooManyRedirects:
        raise failed(f"redirected more than {MAX_REDIRECTS} times") from None
    except httpx.UnsupportedProtocol:
        raise failed("redirected to a URL that is not http(s)") from None
    except httpx.InvalidURL:
        raise InvalidRequestError(f"'{where}' is not a valid URL.", field="content.uri") from None
    except httpx.HTTPError as e:
        why = next((words for name, words in _FETCH_FAILURES if name == type(e).__name__), "the request failed")
        raise failed(why) from None


# --- the document -----------------------------------------------------------------------------


async def url_text(
    uri: str, mime_type: str | None, max_bytes: int = MAX_DOCUMENT_BYTES, timeout_s: float = FETCH_TIMEOUT_S
) -> str:
    """The text of the document at `uri` (data: or http(s)), typed by `mime_type` if given."""
    kind, charset = media_type(mime_type)
    scheme = urlsplit(uri).scheme.lower() if ":" in uri else ""
    if scheme == "data":
        data, source_type = data_url(uri, max_bytes)
        source = media_type(source_type, "content.uri")
    elif scheme in ("http", "https"):
        data, source_type = await fetch_url(uri, max_bytes, timeout_s)
        try:
            source = media_type(source_type, "content.uri")
        except InvalidRequestError:  # a server's odd Content-Type is no fault of the client's
            source = ("", None)
    else:
        what = f"not {shown(scheme, 20)}:" if scheme else f"and '{_url_shown(uri)}' has no scheme"
        raise InvalidRequestError(f"A document's URL must be http(s) or data:, {what}.", field="content.uri")
    convert = converter(kind or source[0], data)
    return await anyio.to_thread.run_sync(convert, data, charset or source[1])


async def document_text(
    doc: MemoryBankDocument, *, max_bytes: int = MAX_DOCUMENT_BYTES, timeout_s: float = FETCH_TIMEOUT_S
) -> str:
    """The text of `doc` to chunk and index (see the module docstring for what is accepted).

    Raises InvalidRequestError (400; `field` relative to the document) for content that cannot be
    read, PayloadTooLargeError (413) past `max_bytes`.
    """
    if isinstance(doc.content, URL):
        return await url_text(doc.content.uri, doc.mime_type, max_bytes, timeout_s)
    text = content_text(doc.content)
    if len(text) > max_bytes or len(text.encode()) > max_bytes:  # the first test is free, the second exact
        raise _too_large("The document", max_bytes)
    kind, _ = media_type(doc.mime_type)
    convert = converter(kind, b"")  # a 400 for a type we cannot read
    if convert is _html:
        return await anyio.to_thread.run_sync(html_text, text)
    if convert is not _plain:  # bytes (a PDF) cannot come as a JSON string
        raise InvalidRequestError(
            f"Inline content is text: send {shown(kind, 80)} documents as a data: or http(s) URL.", field="content"
        )
    return text
