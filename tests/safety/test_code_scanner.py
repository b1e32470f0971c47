"""code_scanner_guard on the real CodeShield (its regexes in-process, semgrep-core offline).

Pattern ids are CodeShield's (codeshield 1.0.1, semgrep 1.79). The semgrep cases are the ones that
came back clean before code_scanner.py's fixes: C's strcpy/sprintf never reached semgrep (their
rules have no prescan regex), and newer semgrep scans nothing under codeshield's flags.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import anyio
import pytest

pytest.importorskip("codeshield")

from llama_core.errors import LlamaError  # noqa: E402
from llama_core.providers.safety.code_scanner import CodeScannerShield, code_snippets  # noqa: E402
from llama_core.types.messages import CompletionMessage, ToolCall, UserMessage  # noqa: E402
from llama_core.types.safety import ShieldDefinition  # noqa: E402

DEFINITION = ShieldDefinition(shield_type="code_scanner_guard")
PICKLE = "import pickle\n\ndef load(data):\n    return pickle.loads(data)\n"
SHELL = "import subprocess\n\ndef listing(name):\n    subprocess.call('ls ' + name, shell=True)\n"
EVAL = "def calc(expr):\n    return eval(expr)\n"
MD5 = "import hashlib\n\ndigest = hashlib.md5(b'secret').hexdigest()\n"
STRCPY = "#include <string.h>\n\nvoid copy(const char *s) {\n    char buf[16];\n    strcpy(buf, s);\n}\n"
SPRINTF = '#include <stdio.h>\n\nvoid say(char *out, const char *name) {\n    sprintf(out, "hi %s", name);\n}\n'
BENIGN_PY = "def add(a, b):\n    return a + b\n"
BENIGN_C = '#include <stdio.h>\n\nint main(void) {\n    printf("%d\\n", 42);\n    return 0;\n}\n'


def fenced(code: str, language: str = "") -> str:
    return f"Here you go:\n\n```{language}\n{code}```\n\nHope that helps."


def verdict(*messages: object) -> tuple[bool, str | None, str | None]:
    reply = anyio.run(CodeScannerShield(None, None).run, list(messages), DEFINITION)
    assert reply.shield_type == "code_scanner_guard"
    return reply.is_violation, reply.violation_type, reply.violation_return_message


@pytest.mark.parametrize(
    ("text", "pattern_ids"),
    [
        (fenced(PICKLE, "python"), "unsafe-pickle-use"),  # semgrep
        (fenced(SHELL, "py"), "insecure-subprocess-using-shell"),  # semgrep
        (fenced(EVAL, "python"), "insecure-eval-use"),  # semgrep
        (fenced(MD5, "python"), "insecure-md5-hash-usage"),  # regex
        (fenced(STRCPY, "c"), "vulnerable-strcpy"),  # semgrep, once its rule has a prescan regex
        (fenced(SPRINTF, "c"), "vulnerable-sprintf"),  # the same
        (STRCPY, "vulnerable-strcpy"),  # a whole message that is code, scanned as every language
        (SHELL, "insecure-subprocess-using-shell"),
        (MD5, "insecure-md5-hash-usage,risky-crypto-algorithm,weak-md5-hashing"),  # Python's, PHP's, Java's rules
    ],
)
def test_insecure_code_is_flagged_with_its_pattern_ids(text: str, pattern_ids: str) -> None:
    assert verdict(UserMessage(content=text)) == (True, pattern_ids, "Sorry, I found security concerns in the code.")


@pytest.mark.parametrize(
    "text",
    [fenced(BENIGN_PY, "python"), fenced(BENIGN_C, "c"), BENIGN_PY, "Hello! How do I bake sourdough bread?"],
)
def test_benign_code_and_prose_pass(text: str) -> None:
    assert verdict(UserMessage(content=text)) == (False, None, None)


def test_every_message_and_code_interpreter_calls_are_scanned() -> None:
    call = ToolCall(call_id="c1", tool_name="code_interpreter", arguments={"code": "import os\nos.system('rm -rf ' + path)\n"})
    assistant = CompletionMessage(content="", stop_reason="end_of_turn", tool_calls=[call])
    assert verdict(UserMessage(content=fenced(EVAL, "python")), UserMessage(content="thanks"), assistant)[:2] == (
        True, "insecure-eval-use,insecure-os-system-use",
    )  # fmt: skip


def test_code_snippets_follow_fences_and_their_languages() -> None:
    text = "a\n```Python\nx = 1\n```\nb\n```c++\nint y;\n```\n```weird-lang\nz\n```\n```\nq\n```\n```js\nopen(\n"
    assert code_snippets([UserMessage(content=text)]) == [
        ("x = 1\n", "python"), ("int y;\n", "cpp"), ("z\n", None), ("q\n", None), ("open(\n", "javascript"),
    ]  # fmt: skip
    assert code_snippets([UserMessage(content="print(1)")]) == [("print(1)", None)]
    assert code_snippets([UserMessage(content="   "), UserMessage(content="```\n\n```")]) == []


def test_scans_leave_no_files_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # codeshield alone leaves its temp file whenever it returns before semgrep (a regex hit here).
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert verdict(UserMessage(content=MD5))[0] is True
    assert verdict(UserMessage(content=fenced(PICKLE, "python")))[0] is True
    assert list(tmp_path.iterdir()) == []


def test_more_code_than_the_limit_is_a_413_before_any_scan() -> None:
    from llama_core.errors import PayloadTooLargeError
    from llama_core.providers.safety.code_scanner import MAX_CODE_CHARS

    code = "x = 1\n" * (MAX_CODE_CHARS // 6 + 1)
    with pytest.raises(PayloadTooLargeError) as e:
        verdict(UserMessage(content=code))
    assert e.value.message == (
        f"code_scanner_guard scans at most 65536 characters of code per request; these messages hold {len(code)}. "
        "Send less code, or fence it (```python) so it is scanned as one language."
    )


def test_a_scan_past_its_time_is_a_503_and_leaves_no_semgrep_running(monkeypatch: pytest.MonkeyPatch) -> None:
    from llama_core.errors import UnavailableError
    from llama_core.providers.safety import code_scanner

    verdict(UserMessage(content=fenced(BENIGN_PY, "python")))  # codeshield loaded: the limit is the scan's alone
    monkeypatch.setattr(code_scanner, "SCAN_TIMEOUT_S", 0.05)
    with pytest.raises(UnavailableError) as e:
        verdict(UserMessage(content=STRCPY))  # every language: several semgrep runs
    assert e.value.message == "CodeShield did not finish scanning within 0.05 s; send less code, or fence it with its language."
    children = [p for p in Path("/proc").iterdir() if p.name.isdigit() and b"llama-codeshield-" in _cmdline(p)]
    assert [p for p in children if _ppid(p) == os.getpid()] == []


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def _ppid(proc: Path) -> int:
    try:
        return int((proc / "stat").read_text().rpartition(")")[2].split()[1])
    except OSError:
        return -1


def test_a_scan_that_fails_is_an_error_not_a_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # CodeShield.scan_code answers "secure" when anything goes wrong; the shield does not.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))
    with pytest.raises(LlamaError, match=r"^CodeShield could not scan the code: FileNotFoundError: "):
        verdict(UserMessage(content=fenced(PICKLE, "python")))


# codeshield's own import symlinks `osemgrep` into semgrep's package folder: on a read-only
# site-packages it fails (OSError, EROFS). Run both in a private mount namespace where that folder is
# read-only and holds only semgrep-core (through a link to a second view of the real one).
READ_ONLY = """
set -e
bin={bin}; work={work}
mkdir -p $work/real $work/ro $work/config
cp $bin/__init__.py $work/ro/ && ln -s $work/real/semgrep-core $work/ro/semgrep-core
mount --bind $bin $work/real && mount --bind $work/ro $bin && mount -o remount,ro,bind $bin
{python} -c 'import codeshield.cs' 2>&1 | tail -1
LLAMA_STACK_CONFIG_DIR=$work/config {python} -c '{scan}'
"""
SCAN = """
import sys, anyio
from llama_core.providers.safety.code_scanner import CodeScannerShield
from llama_core.types.messages import UserMessage
from llama_core.types.safety import ShieldDefinition
message = UserMessage(content="import pickle\\npickle.loads(data)\\n")
reply = anyio.run(CodeScannerShield(None, None).run, [message], ShieldDefinition(shield_type="code_scanner_guard"))
print(sys.modules["codeshield.insecure_code_detector.internal.oss"].SEMGREP_BINARY_PATH, reply.violation_type)
"""


def test_a_read_only_site_packages_does_not_stop_the_scanner(tmp_path: Path) -> None:
    spec = importlib.util.find_spec("semgrep.bin")
    assert spec is not None and spec.submodule_search_locations
    semgrep_bin = Path(next(iter(spec.submodule_search_locations)))
    if not (semgrep_bin / "semgrep-core").is_file():
        pytest.skip("this semgrep has no semgrep-core")
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("needs unprivileged user and mount namespaces (unshare -rm)")
    script = READ_ONLY.format(bin=semgrep_bin, work=tmp_path, python=sys.executable, scan=SCAN.replace("'", "'\\''"))
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})  # fmt: skip
    assert done.returncode == 0, done.stderr
    stock, ours = done.stdout.strip().splitlines()[-2:]
    assert stock.startswith("OSError: [Errno 30] Read-only file system: ")
    assert ours == f"{tmp_path}/config/cache/semgrep/osemgrep unsafe-pickle-use"


def test_the_scan_runs_under_trio_too() -> None:
    # codeshield drives semgrep through asyncio's subprocesses; the shield gives it a loop of its own.
    reply = anyio.run(CodeScannerShield(None, None).run, [UserMessage(content=fenced(PICKLE, "python"))], DEFINITION, backend="trio")
    assert (reply.is_violation, reply.violation_type) == (True, "unsafe-pickle-use")


def test_over_http_through_run_shields() -> None:
    # Needs safety-core's provider (llama_core.providers.safety.meta_reference); skipped without it.
    pytest.importorskip("llama_core.providers.safety.meta_reference")
    import httpx
    from rpc.server import running_server

    from llama_core.config import RunConfig
    from llama_core.stack import Stack
    from llama_rpc.http import create_app

    stack = Stack.from_config(RunConfig(name="scanner", distribution_id="local", providers={"safety": {"provider_id": "meta-reference"}}))
    messages = [{"role": "user", "content": fenced(STRCPY, "c")}]
    shields = [{"shield_type": "code_scanner_guard"}, {"shield_type": "code_scanner_guard", "on_violation_action": 0}]
    with running_server(lambda: create_app(stack), stack=stack) as url:
        reply = httpx.post(url + "/safety/run_shields", json={"messages": messages, "shields": shields}, timeout=60)
        benign = httpx.post(url + "/safety/run_shields", json={"messages": [{"role": "user", "content": BENIGN_C}], "shields": shields[:1]}, timeout=60)
    assert reply.status_code == 200, reply.text
    found = {"violation_type": "vulnerable-strcpy", "violation_return_message": "Sorry, I found security concerns in the code."}
    assert reply.json() == {"responses": [
        {"shield_type": "code_scanner_guard", "is_violation": True, **found},
        {"shield_type": "code_scanner_guard", "is_violation": False, **found},  # IGNORE keeps the record
    ]}  # fmt: skip
    assert benign.json() == {"responses": [
        {"shield_type": "code_scanner_guard", "is_violation": False, "violation_type": None, "violation_return_message": None},
    ]}  # fmt: skip


def test_a_semgrep_that_finds_nothing_is_reported_in_the_log(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # What semgrep 1.120+ does under codeshield's flags: exit 0, no results. `true` does the same.
    from llama_core.providers.safety import code_scanner

    codeshield = code_scanner.load_codeshield()
    oss = sys.modules["codeshield.insecure_code_detector.insecure_code_detector"].oss
    monkeypatch.setattr(oss, "SEMGREP_COMMAND", [shutil.which("true")])
    code_scanner._check_semgrep(codeshield, oss)
    assert [r.getMessage() for r in caplog.records if r.name == code_scanner.__name__] == [
        "code_scanner_guard: CodeShield's semgrep analyzer did not flag pickle.loads in its self-check (semgrep 1.120 "
        "and later scan nothing under codeshield's --project-root /; this package pins semgrep below 1.80). Only "
        "CodeShield's regex rules are in effect."
    ]


def test_osemgrep_is_linked_beside_semgrep_core_else_in_the_first_place_that_takes_it(tmp_path: Path) -> None:
    from llama_core.providers.safety.code_scanner import semgrep_binary

    core = tmp_path / "bin" / "semgrep-core"
    core.parent.mkdir()
    core.write_bytes(b"")
    assert semgrep_binary(core, []) == core.parent / "osemgrep"
    assert (core.parent / "osemgrep").resolve() == core
    assert semgrep_binary(core, []) == core.parent / "osemgrep"  # found again, not remade
    # Beside it, something no link can replace: the first of the places that takes one; no spare left behind.
    other = tmp_path / "other-bin" / "semgrep-core"
    other.parent.mkdir()
    other.write_bytes(b"")
    (other.parent / "osemgrep").mkdir()
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert semgrep_binary(other, [blocked / "x", tmp_path / "cache"]) == tmp_path / "cache" / "osemgrep"
    assert (tmp_path / "cache" / "osemgrep").resolve() == other
    assert sorted(p.name for p in other.parent.iterdir()) == ["osemgrep", "semgrep-core"]
