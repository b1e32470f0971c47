"""Document text from every kind of content: inline text, data: URLs, http(s) URLs (a loopback site), PDFs.

Each refusal is pinned: its class (status), message and field.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_from_bytes

import pytest

from llama_core.errors import InvalidRequestError, PayloadTooLargeError
from llama_core.providers.memory import documents
from llama_core.providers.memory.documents import document_text
from llama_core.types import URL, TextContentItem
from llama_core.types.memory import MemoryBankDocument

from memory.pdfs import pdf
from memory.site import Site

pytestmark = pytest.mark.anyio

PDF = pdf([["Hello PDF world", "second line"], [], ["third page"]])
PDF_TEXT = "Hello PDF world\nsecond line\n\nthird page"
SCAN = pdf([[], []])  # pages that are pictures only
HTML = b"""<!doctype html><html><head><title>Csv &amp; you</title><style>p { color: red }</style>
<script>var secret = "not text";</script></head>
<body><h1>Reading   CSV</h1><p>Use the <a href="#">csv</a> module.<br>It reads rows.</p>
<table><tr><td>a</td><td>b</td></tr></table><!-- a comment --></body></html>"""
HTML_TEXT = "Csv & you\nReading CSV\nUse the csv module.\nIt reads rows.\na b"


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with Site() as s:
        s.add("/plain.txt", "café".encode(), "text/plain; charset=utf-8")
        s.add("/latin.txt", "café".encode("latin-1"), "text/plain; charset=ISO-8859-1")
        s.add("/untyped.txt", "naïve".encode())
        s.add("/page.html", HTML, "text/html")
        s.add("/doc.pdf", PDF, "application/pdf")
        s.add("/doc.bin", PDF, "application/octet-stream")
        s.add("/scan.pdf", SCAN, "application/pdf")
        s.add("/picture.png", b"\x89PNG\r\n\x1a\n", "image/png")
        s.add("/odd-type.txt", b"odd", "text plain??")
        s.add("/moved", status=302, headers={"Location": "/plain.txt"})
        s.add("/loop", status=302, headers={"Location": "/loop"})
        s.add("/to-file", status=302, headers={"Location": "file:///etc/passwd"})
        s.add("/gone", status=410)
        s.add("/big", b"x" * 2000, "text/plain")
        s.add("/big-chunked", b"x" * 2000, "text/plain", chunked=True)
        s.add("/small-chunked", b"y" * 900, "text/plain", chunked=True)
        s.add("/bomb", gzip.compress(b"z" * 100_000), "text/plain", headers={"Content-Encoding": "gzip"})
        s.add("/stall", b"a" * 100, "text/plain", stall=True)
        yield s


async def text_of(content: Any, mime_type: str | None = None, **limits: Any) -> str:
    return await document_text(MemoryBankDocument(document_id="d", content=content, mime_type=mime_type), **limits)


async def refusal(content: Any, mime_type: str | None = None, **limits: Any) -> tuple[type, str, str | None]:
    with pytest.raises((InvalidRequestError, PayloadTooLargeError)) as caught:
        await text_of(content, mime_type, **limits)
    return type(caught.value), caught.value.message, getattr(caught.value, "field", None)


def data(payload: bytes, media: str = "", b64: bool = True) -> URL:
    if b64:
        return URL(uri=f"data:{media};base64,{base64.b64encode(payload).decode()}")
    return URL(uri=f"data:{media},{quote_from_bytes(payload)}")


# --- inline ---------------------------------------------------------------------------------------


async def test_inline_text_and_parts() -> None:
    assert await text_of("plain words") == "plain words"
    assert await text_of([TextContentItem(text="one "), TextContentItem(text="two")]) == "one two"
    assert await text_of("# Title\n\n*markdown* stays", "text/markdown") == "# Title\n\n*markdown* stays"
    assert await text_of(HTML.decode(), "text/html; charset=utf-8") == HTML_TEXT


async def test_inline_refusals() -> None:
    assert await refusal("%PDF-1.4 ...", "application/pdf") == (
        InvalidRequestError, "Inline content is text: send application/pdf documents as a data: or http(s) URL.", "content",
    )  # fmt: skip
    assert await refusal("x", "image/png") == (
        InvalidRequestError,
        "Documents of type image/png are not supported: send text (text/plain, text/markdown, text/html) or application/pdf.",
        "mime_type",
    )
    assert await refusal("x", "pdf") == (InvalidRequestError, "'pdf' is not a media type such as text/plain.", "mime_type")
    assert await refusal("x", "text/plain; charset=klingon") == (InvalidRequestError, "Unknown charset 'klingon'.", "mime_type")
    assert await refusal("é" * 600, max_bytes=1000) == (
        PayloadTooLargeError, "The document is larger than 1000 bytes, the most a document may have.", None,
    )  # fmt: skip


# --- data: URLs -----------------------------------------------------------------------------------


async def test_data_urls() -> None:
    assert await text_of(data(b"hello there", "text/plain")) == "hello there"
    assert await text_of(data("café".encode(), b64=False)) == "café"  # no type: UTF-8 text
    assert await text_of(data("café".encode("latin-1"), "text/plain;charset=latin-1", b64=False)) == "café"
    assert await text_of(URL(uri="data:,a%20b%2Cc")) == "a b,c"
    assert await text_of(URL(uri="data:text/plain;base64,aGVs\nbG8=")) == "hello"  # line breaks in base64
    assert await text_of(data(HTML, "text/html")) == HTML_TEXT
    assert await text_of(data(PDF, "application/pdf")) == PDF_TEXT
    assert await text_of(data(PDF)) == PDF_TEXT  # no type: the magic number says PDF
    assert await text_of(data("\ufeffbom".encode())) == "bom"  # a UTF-8 BOM is not text
    assert await text_of(data(b"# md", "application/octet-stream"), "text/markdown") == "# md"  # mime_type wins


async def test_data_url_refusals() -> None:
    assert await refusal(URL(uri="data:text/plain;base64")) == (
        InvalidRequestError, "The data: URL has no comma before its data.", "content.uri",
    )  # fmt: skip
    assert await refusal(URL(uri="data:text/plain;base64,@@@@")) == (
        InvalidRequestError, "The data: URL's base64 is malformed.", "content.uri",
    )  # fmt: skip
    assert await refusal(data(b"ok \xff\xfe", "text/plain")) == (
        InvalidRequestError,
        "The document is not valid utf-8: byte 0xff at offset 3. Give its charset in mime_type (e.g. text/plain; charset=latin-1).",
        "mime_type",
    )
    assert await refusal(data(b"\xff", "text/plain;charset=ascii")) == (
        InvalidRequestError, "The document is not valid ascii: byte 0xff at offset 0.", "mime_type",
    )  # fmt: skip
    assert await refusal(data(b"GIF89a", "image/gif")) == (
        InvalidRequestError,
        "Documents of type image/gif are not supported: send text (text/plain, text/markdown, text/html) or application/pdf.",
        "mime_type",
    )
    for url in (data(b"x" * 1001), data(b"x" * 1001, b64=False)):
        assert await refusal(url, max_bytes=1000) == (
            PayloadTooLargeError, "The data: URL's document is larger than 1000 bytes, the most a document may have.", None,
        )  # fmt: skip
    assert await text_of(data(b"x" * 1000), max_bytes=1000) == "x" * 1000
    assert await text_of(data("é".encode() * 500, b64=False), max_bytes=1000) == "é" * 500  # 3000 characters of %XX


async def test_pdf_refusals() -> None:
    assert await refusal(data(SCAN, "application/pdf")) == (
        InvalidRequestError,
        "The PDF has no text layer (its pages are images, as scans are): run OCR on it first, or send its text.",
        "content",
    )
    assert await refusal(data(b"%PDF-1.4 and then nothing")) == (
        InvalidRequestError, "The document is not a readable PDF.", "content",
    )  # fmt: skip
    assert await refusal(data(b"plain words", "application/pdf")) == (
        InvalidRequestError, "The document is not a readable PDF.", "content",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("file:///etc/passwd", "A document's URL must be http(s) or data:, not file:."),
        ("ftp://example.com/a.txt", "A document's URL must be http(s) or data:, not ftp:."),
        ("javascript:alert(1)", "A document's URL must be http(s) or data:, not javascript:."),
        ("FILE:///etc/passwd", "A document's URL must be http(s) or data:, not file:."),
        ("relative/path.txt", "A document's URL must be http(s) or data:, and 'relative/path.txt' has no scheme."),
    ],
)
async def test_other_schemes_are_refused(uri: str, message: str) -> None:
    # The wire decoder already refuses most of these (URL.uri's pattern); in-process callers reach here.
    assert await refusal(URL(uri=uri)) == (InvalidRequestError, message, "content.uri")


# --- http(s) --------------------------------------------------------------------------------------


async def test_fetched_text_html_and_pdf(site: Site) -> None:
    assert await text_of(URL(uri=site.url("/plain.txt"))) == "café"
    assert await text_of(URL(uri=site.url("/latin.txt"))) == "café"  # the server's charset
    assert await text_of(URL(uri=site.url("/untyped.txt"))) == "naïve"
    assert await text_of(URL(uri=site.url("/page.html"))) == HTML_TEXT
    assert await text_of(URL(uri=site.url("/doc.pdf"))) == PDF_TEXT
    assert await text_of(URL(uri=site.url("/doc.bin"))) == PDF_TEXT  # octet-stream: the magic number decides
    assert await text_of(URL(uri=site.url("/latin.txt")), "text/plain; charset=utf-16") == "慣\ue966"  # mime_type wins
    assert await text_of(URL(uri=site.url("/odd-type.txt"))) == "odd"  # a server's odd type is sniffed past


async def test_redirects_are_followed_to_http_only(site: Site) -> None:
    assert await text_of(URL(uri=site.url("/moved"))) == "café"
    assert await refusal(URL(uri=site.url("/loop"))) == (
        InvalidRequestError, f"Fetching {site.url('/loop')} failed: redirected more than 5 times.", "content.uri",
    )  # fmt: skip
    assert await refusal(URL(uri=site.url("/to-file"))) == (
        InvalidRequestError, f"Fetching {site.url('/to-file')} failed: redirected to a URL that is not http(s).", "content.uri",
    )  # fmt: skip


async def test_fetch_refusals(site: Site) -> None:
    assert await refusal(URL(uri=site.url("/gone"))) == (
        InvalidRequestError, f"Fetching {site.url('/gone')} failed: it answered 410 Gone.", "content.uri",
    )  # fmt: skip
    assert await refusal(URL(uri=site.url("/scan.pdf"))) == (
        InvalidRequestError,
        "The PDF has no text layer (its pages are images, as scans are): run OCR on it first, or send its text.",
        "content",
    )
    assert await refusal(URL(uri=site.url("/picture.png"))) == (
        InvalidRequestError,
        "Documents of type image/png are not supported: send text (text/plain, text/markdown, text/html) or application/pdf.",
        "mime_type",
    )
    closed = Site()  # its port, freed: nothing listens there
    url = closed.url("/x")
    closed.httpd.server_close()
    assert await refusal(URL(uri=url)) == (InvalidRequestError, f"Fetching {url} failed: could not connect.", "content.uri")


async def test_size_limit(site: Site) -> None:
    for path in ("/big", "/big-chunked", "/bomb"):  # by Content-Length, counted while streaming, decompressed
        assert await refusal(URL(uri=site.url(path)), max_bytes=1000) == (
            PayloadTooLargeError,
            f"The document at {site.url(path)} is larger than 1000 bytes, the most a document may have.",
            None,
        )
    assert await text_of(URL(uri=site.url("/small-chunked")), max_bytes=1000) == "y" * 900


async def test_a_stalled_server_times_out(site: Site) -> None:
    assert await refusal(URL(uri=site.url("/stall")), timeout_s=0.5) == (
        InvalidRequestError, f"Fetching {site.url('/stall')} failed: no answer within 0.5 s.", "content.uri",
    )  # fmt: skip


async def test_signed_urls_stay_out_of_errors(site: Site) -> None:
    signed = site.url("/gone") + "?X-Amz-Signature=s3cr3t-signature&X-Amz-Credential=AKIA123"
    kind, message, _ = await refusal(URL(uri=signed))
    assert message == f"Fetching {site.url('/gone')}?… failed: it answered 410 Gone."
    userinfo = site.url("/gone").replace("http://", "http://alice:pa55word@")
    kind, message, _ = await refusal(URL(uri=userinfo))
    assert message == f"Fetching {site.url('/gone').replace('http://', 'http://***@')} failed: it answered 410 Gone."
    assert "/gone?X-Amz-Signature=s3cr3t-signature&X-Amz-Credential=AKIA123" in site.requests  # it was asked


def test_limits_are_named_constants() -> None:
    assert (documents.MAX_DOCUMENT_BYTES, documents.FETCH_TIMEOUT_S, documents.MAX_REDIRECTS) == (16 * 2**20, 30.0, 5)
