"""A turn's attachments as files for the code interpreter (files.py), and the llm query
generator's template rendering (query.py), without a model."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from llama_core.errors import InvalidRequestError, PayloadTooLargeError
from llama_core.providers.agents import files, query
from llama_core.providers.agents.sandbox import Limits, run_code
from llama_core.types.agents import Attachment
from llama_core.types.common import URL
from memory.site import Site

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with Site() as s:
        s.add("/data/table.csv", b"a,b\n1,2\n", "text/csv")
        s.add("/download?id=7", b"x")
        s.add("/odd%20name!.txt", b"odd", "text/plain")
        s.add("/big.txt", b"x" * 100, "text/plain")
        s.add("/empty.txt", b"", "text/plain")
        s.add("/latin.txt", "café".encode("latin-1"), "text/plain; charset=ISO-8859-1")
        yield s


async def test_attachments_become_named_files(site: Site, tmp_path: Path) -> None:
    attachments = [
        Attachment(content=URL(uri=site.url("/data/table.csv")), mime_type=""),
        Attachment(content="plain words", mime_type="text/plain"),
        Attachment(content=URL(uri="data:application/json;base64," + base64.b64encode(b'{"k": 1}').decode()), mime_type=""),
        Attachment(content=URL(uri=site.url("/odd%20name!.txt")), mime_type="text/plain"),
        Attachment(content="more words", mime_type="text/plain"),
    ]
    read = await files.read_attachments(attachments)
    assert [(f.name, f.data, f.mime_type) for f in read] == [
        ("table.csv", b"a,b\n1,2\n", "text/csv"),
        ("attachment.txt", b"plain words", "text/plain"),
        ("attachment.json", b'{"k": 1}', "application/json"),
        ("attachment.txt", b"odd", "text/plain"),  # "odd name!.txt" is no tame file name
        ("attachment.txt", b"more words", "text/plain"),
    ]
    (tmp_path / "table.csv").write_text("an earlier turn's")
    (tmp_path / "attachment-2.txt").symlink_to("/etc/hostname")  # left by sandboxed code: never followed
    names = files.write_files(read, tmp_path)
    assert names == ["table-2.csv", "attachment.txt", "attachment.json", "attachment-3.txt", "attachment-4.txt"]
    assert [(tmp_path / n).read_bytes() for n in names] == [f.data for f in read]
    assert (tmp_path / "table.csv").read_text() == "an earlier turn's"
    assert files.files_message(names[:2]).content == (
        '# There is a file accessible to you at "/tmp/scratch/table-2.csv"\n'
        '# There is a file accessible to you at "/tmp/scratch/attachment.txt"\n'
    )
    # For retrieval, a fetched URL's bytes go as a data: URL (fetched once); inline text as sent.
    assert read[0].as_attachment(attachments[0]).content == URL(uri="data:text/csv;base64," + base64.b64encode(b"a,b\n1,2\n").decode())
    assert read[1].as_attachment(attachments[1]) is attachments[1]


async def test_retrieval_reads_a_fetched_attachment_as_it_would_the_url(site: Site) -> None:
    from llama_core.providers.memory.documents import document_text
    from llama_core.types.memory import MemoryBankDocument

    latin = Attachment(content=URL(uri=site.url("/latin.txt")), mime_type="text/plain")  # the charset is the server's
    [file] = await files.read_attachments([latin])
    again = file.as_attachment(latin)
    assert await document_text(MemoryBankDocument(document_id="d", content=again.content, mime_type=again.mime_type)) == "café"


async def test_unreadable_attachments_are_refused(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    async def refusal(attachment: Attachment) -> tuple[type, str, str | None]:
        with pytest.raises((InvalidRequestError, PayloadTooLargeError)) as caught:
            await files.read_attachments([Attachment(content="fine", mime_type="text/plain"), attachment])
        return type(caught.value), caught.value.message, getattr(caught.value, "field", None)

    assert await refusal(Attachment(content=URL(uri="file:///etc/passwd"), mime_type="text/plain")) == (
        InvalidRequestError, "An attachment's URL must be http(s) or data:, not file:.", "attachments[1].content.uri"
    )  # fmt: skip
    assert await refusal(Attachment(content="x", mime_type="not a type")) == (
        InvalidRequestError, "'not a type' is not a media type such as text/plain.", "attachments[1].mime_type"
    )  # fmt: skip
    assert await refusal(Attachment(content=" \n", mime_type="text/plain")) == (
        InvalidRequestError, "The attachment has no text.", "attachments[1].content"
    )  # fmt: skip
    assert await refusal(Attachment(content=URL(uri="data:text/plain,"), mime_type="text/plain")) == (
        InvalidRequestError, "The attachment's data: URL holds no data.", "attachments[1].content.uri"
    )  # fmt: skip
    assert await refusal(Attachment(content=URL(uri=site.url("/empty.txt") + "?sig=secret"), mime_type="")) == (
        InvalidRequestError, f"The attachment at {site.url('/empty.txt')}?… is empty.", "attachments[1].content.uri"
    )  # fmt: skip
    monkeypatch.setattr(files, "MAX_BYTES", 99)
    assert await refusal(Attachment(content=URL(uri=site.url("/big.txt")), mime_type="")) == (
        PayloadTooLargeError, f"The document at {site.url('/big.txt')} is larger than 99 bytes, the most a document may have.", None
    )  # fmt: skip


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (.ci/run installs it)")
async def test_sandboxed_code_opens_a_written_attachment(site: Site, tmp_path: Path) -> None:
    read = await files.read_attachments([Attachment(content=URL(uri=site.url("/data/table.csv")), mime_type="text/csv")])
    [name] = files.write_files(read, tmp_path)
    code = f"import csv\nprint(list(csv.reader(open('/tmp/scratch/{name}'))))"
    result = await run_code(code, tmp_path, Limits(cpu_seconds=5, wall_seconds=20))
    assert result.text == "completed\n[stdout][['a', 'b'], ['1', '2']]\n[/stdout]"
    assert result.attachments == []  # the attachment is not the code's output


# --- the llm query generator's template -------------------------------------------------------------


async def test_a_template_renders_over_the_conversation() -> None:
    messages = [{"role": "user", "content": "first", "context": None}, {"role": "assistant", "content": "second"}]
    template = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
    assert await query.render(template, messages) == "user: first\nassistant: second\n"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ messages.__class__.__mro__ }}", "The template failed to render: SecurityError: access to attribute '__class__' of 'list' object is unsafe."),
        ("{{ 'x' * 10**10 }}", "The template failed to render: it needs more memory than a template may use."),
        ("{% for i in range(10**5) %}{% for j in range(10**5) %}{% endfor %}{% endfor %}",
         "The template did not render within its CPU and memory limits."),
        ("{% for i in range(10**5) %}{{ 'x' * 1000 }}{% endfor %}", "The template failed to render: its output passes 65536 characters."),
    ],
)  # fmt: skip
async def test_a_template_cannot_escape_or_exhaust_the_server(template: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(query, "RENDER_CPU_S", 1)
    with pytest.raises(InvalidRequestError) as caught:
        await query.render(template, [])
    assert (caught.value.message, caught.value.field) == (message, "query_generator_config.template")
