"""`code_scanner_guard`: Meta's CodeShield (the `codeshield` package) on the code in the messages.

    shield = CodeScannerShield(None, stack)
    await shield.run(messages, definition)
    -> ShieldResponse(is_violation=True, violation_type="insecure-eval-use,unsafe-pickle-use",
                      violation_return_message="Sorry, I found security concerns in the code.")

What is scanned, from every message (as the reference joined them all):
    - each fenced block (```python ... ```), with the fence's language as CodeShield's hint
      (FENCE_LANGUAGES; an unknown or missing tag scans as every language CodeShield knows);
    - the whole text of a message that has no fence (code, or prose: CodeShield's patterns want code
      syntax, e.g. `hashlib.md5(`, so "is MD5 ok?" passes);
    - the `code` argument of a code_interpreter tool call, as Python.
violation_type is the pattern ids found, sorted and without repeats (CodeShield's own order depends on
thread timing). CodeShield runs offline: its regexes in-process, then semgrep-core on a temp file.

Three things about the codeshield package this module works around (found by running it):

1. Import. codeshield's `oss` module, at import, symlinks `osemgrep` next to the semgrep-core binary
   inside site-packages (the binary picks its mode from argv[0]); on a read-only site-packages the
   import dies with OSError (EROFS). codeshield looks for `insecure_code_detector.internal.oss` first
   (Meta's own build hook), so we register one there (`_oss_module`) that links `osemgrep` beside the
   binary when it can, else under ~/.llama/cache/semgrep, else the temp dir; without semgrep-core at
   all (a wheel without the binary) the semgrep analyzer is off and the regexes still run.
2. Skipped semgrep rules. In CodeShield mode semgrep only runs when some rule's `prescan_regex`
   matches the code (`_is_semgrep_scan_recommended`), and two C/C++ rules have none
   (vulnerable-strcpy, vulnerable-sprintf): `strcpy(buf, s)` alone never reached semgrep. We give
   each rule without one a prescan regex made of the functions its patterns call (`_prescan_fill`).
3. Silent failures. `CodeShield.scan_code` turns any exception into "secure"; we call the analyzer
   under it per language ourselves, so a scan that fails is an error. And semgrep from 1.120 (1.100
   still works) scans nothing when given `--project-root /`, which codeshield passes for its
   absolute temp file, answering zero results; the pin below 1.80 avoids it, and the first scan of a
   process checks that semgrep flags a known `pickle.loads` (a warning in the log if not).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import json
import logging
import os
import re
import sys
import tempfile
import threading
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from llama_core.errors import LlamaError, PayloadTooLargeError, UnavailableError, shown
from llama_core.paths import config_dir
from llama_core.types.common import content_text
from llama_core.types.messages import BuiltinTool, CompletionMessage, Message
from llama_core.types.safety import ShieldDefinition, ShieldResponse

if TYPE_CHECKING:
    from llama_core.stack import Stack

log = logging.getLogger(__name__)

VIOLATION_MESSAGE = "Sorry, I found security concerns in the code."
# semgrep's time grows faster than the code (about 1 s for 12 KB, 5 s for 60 KB unfenced, which is
# scanned as every language), so a request's code is bounded, and so is the scan.
MAX_CODE_CHARS = 64 * 1024
SCAN_TIMEOUT_S = 30.0

# A fence's info string (lowercased) -> CodeShield's Language value.
# fmt: off
FENCE_LANGUAGES: dict[str, str] = {
    "python": "python", "py": "python", "python3": "python", "py3": "python",
    "c": "c", "h": "c",
    "cpp": "cpp", "c++": "cpp", "cc": "cpp", "cxx": "cpp", "hpp": "cpp",
    "csharp": "csharp", "cs": "csharp", "c#": "csharp",
    "java": "java",
    "javascript": "javascript", "js": "javascript", "jsx": "javascript", "node": "javascript", "mjs": "javascript",
    "php": "php", "hack": "hack",
    "rust": "rust", "rs": "rust",
    "ruby": "ruby", "rb": "ruby",
    "kotlin": "kotlin", "kt": "kotlin",
    "swift": "swift",
    "objective-c": "objective_c", "objc": "objective_c",
    "objective-c++": "objective_cpp", "objc++": "objective_cpp",
    "xml": "xml",
}
# fmt: on

# ```lang ...\n code ``` (a fence left open at the end of a message runs to its end)
FENCE = re.compile(r"^[ \t]*```[ \t]*([^\s`]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.DOTALL | re.MULTILINE)

# The semgrep canary: codeshield's rule `unsafe-pickle-use` must flag this.
CANARY = ("import pickle\n\ndef load(data):\n    return pickle.loads(data)\n", "unsafe-pickle-use")


def code_snippets(messages: list[Message]) -> list[tuple[str, str | None]]:
    """The code to scan in `messages`: (code, CodeShield Language value or None for every language)."""
    snippets: list[tuple[str, str | None]] = []
    for message in messages:
        text = content_text(message.content)
        fences = FENCE.findall(text)
        if fences:
            snippets += [(code, FENCE_LANGUAGES.get(tag.lower())) for tag, code in fences]
        else:
            snippets.append((text, None))
        if isinstance(message, CompletionMessage):
            for call in message.tool_calls:
                code = call.arguments.get("code")
                if call.tool_name == BuiltinTool.code_interpreter and isinstance(code, str):
                    snippets.append((code, "python"))
    return [(code, language) for code, language in snippets if code.strip()]


class CodeScannerShield:
    """The Shield of `code_scanner_guard` (see llama_core.providers.safety.shields); needs no config."""

    def __init__(self, section: None, stack: Stack | None) -> None:
        del section, stack  # nothing to configure; codeshield is imported on the first scan

    async def run(self, messages: list[Message], definition: ShieldDefinition) -> ShieldResponse:
        """The verdict on the code in `messages`. Raises PayloadTooLargeError (413) for more than
        MAX_CODE_CHARS of code, UnavailableError (503) for a scan that outlasts SCAN_TIMEOUT_S (its
        semgrep processes killed), and LlamaError (500) when CodeShield fails to scan."""
        snippets = code_snippets(messages)
        size = sum(len(code) for code, _ in snippets)
        if size > MAX_CODE_CHARS:
            raise PayloadTooLargeError(
                f"code_scanner_guard scans at most {MAX_CODE_CHARS} characters of code per request; these "
                f"messages hold {size}. Send less code, or fence it (```python) so it is scanned as one language."
            )
        ids = await anyio.to_thread.run_sync(scan_blocking, snippets) if snippets else []
        if not ids:
            return ShieldResponse(shield_type=definition.shield_type, is_violation=False)
        return ShieldResponse(
            shield_type=definition.shield_type,
            is_violation=True,
            violation_type=",".join(ids),
            violation_return_message=VIOLATION_MESSAGE,
        )


def scan_blocking(snippets: list[tuple[str, str | None]]) -> list[str]:
    """The sorted pattern ids CodeShield finds in `snippets`, run on this (worker) thread's own loop.

    Its semgrep runs as a subprocess through asyncio, so each scan has a loop of its own here: the
    stack's loop is never blocked by the regexes or by waiting on semgrep.
    """
    try:
        found = asyncio.run(_scan(load_codeshield(), snippets))
    except TimeoutError:
        raise UnavailableError(
            f"CodeShield did not finish scanning within {SCAN_TIMEOUT_S:g} s; send less code, or fence it with its language."
        ) from None
    except Exception as e:  # codeshield raises bare Exceptions (an unwritable temp dir, a bad rule file)
        raise LlamaError(f"CodeShield could not scan the code: {type(e).__name__}: {shown(str(e))}") from e
    return sorted(set(found))


async def _scan(codeshield: types.SimpleNamespace, snippets: list[tuple[str, str | None]]) -> list[str]:
    # As CodeShield.scan_code does, one analysis per language (every supported one without a hint),
    # but on files of our own: codeshield leaves its temp file behind whenever it returns before
    # semgrep (a regex hit, or no prescan match), one file per language per scan.
    with tempfile.TemporaryDirectory(prefix="llama-codeshield-") as folder:
        jobs = []
        for i, (code, hint) in enumerate(snippets):
            for value in [hint] if hint else codeshield.languages:
                language = codeshield.Language(value)
                path = Path(folder) / f"{i}-{value}{codeshield.extension(language)}"
                path.write_text(code, encoding="utf-8")
                jobs.append(codeshield.analyze(language, code, path=path, usecase=codeshield.UseCase.CODESHIELD))
        try:
            async with asyncio.timeout(SCAN_TIMEOUT_S):
                found = await asyncio.gather(*jobs)
        except TimeoutError:
            # Cancelling codeshield's waits leaves its semgrep processes running: kill them, and let this
            # loop reap them and close their pipes before asyncio.run closes it (else ResourceWarnings).
            killed = _kill_scanners(folder)
            for _ in range(250):
                if not any(Path(f"/proc/{pid}").exists() for pid in killed):
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.05)
            raise
    return [pattern_id(issue) for issues in found for issue in issues]


def _kill_scanners(folder: str) -> list[int]:
    """SIGKILL this process's children whose command line names `folder` (the semgrep runs of one
    scan); their pids."""
    killed = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (proc / "stat").read_text()
            ppid = int(stat.rpartition(")")[2].split()[1])
            if ppid == os.getpid() and folder.encode() in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), 9)
                killed.append(int(proc.name))
    return killed


def pattern_id(issue: Any) -> str:
    """The issue's rule id. semgrep prefixes a rule's id with its config file's folders, relative to
    the working directory (`.venv.lib.python3.11.site-packages.codeshield...._generated_.unsafe-pickle-use`
    when the stack runs from the folder holding its venv); CodeShield's own ids have no dots."""
    return (issue.pattern_id or issue.name or issue.cwe_id).rpartition(".")[2]


_loading = threading.Lock()


@functools.cache
def _load() -> types.SimpleNamespace:
    import codeshield.insecure_code_detector.insecure_code_detector as icd
    import codeshield.insecure_code_detector.insecure_patterns as patterns
    from codeshield.insecure_code_detector import languages
    from codeshield.insecure_code_detector.languages import Language
    from codeshield.insecure_code_detector.usecases import UseCase

    if not getattr(patterns.load_prescan_regexes, "_llama_filled", False):
        patterns.load_prescan_regexes = _prescan_fill(patterns.load_prescan_regexes, patterns.InsecurePattern, icd.oss)
    codeshield = types.SimpleNamespace(
        analyze=icd.analyze, Language=Language, UseCase=UseCase, extension=languages.get_file_extension,
        languages=[language.value for language in languages.get_supported_languages()],
    )  # fmt: skip
    _check_semgrep(codeshield, icd.oss)
    return codeshield


def load_codeshield() -> types.SimpleNamespace:
    """codeshield's analyzer, imported once per process with the fixes in the module docstring."""
    with _loading:  # shields are built and run on worker threads: import and probe once
        if "codeshield.insecure_code_detector.insecure_code_detector" not in sys.modules:
            _register_oss()
        return _load()


def _check_semgrep(codeshield: types.SimpleNamespace, oss: Any) -> None:
    if not oss.ENABLE_SEMGREP:
        return
    code, expected = CANARY
    if expected not in asyncio.run(_scan(codeshield, [(code, "python")])):
        log.warning(
            "code_scanner_guard: CodeShield's semgrep analyzer did not flag pickle.loads in its self-check "
            "(semgrep 1.120 and later scan nothing under codeshield's --project-root /; this package pins "
            "semgrep below 1.80). Only CodeShield's regex rules are in effect."
        )


# -- 1. the oss module codeshield imports -------------------------------------------------------


def _register_oss() -> None:
    name = "codeshield.insecure_code_detector.internal"
    internal = types.ModuleType(name, "codeshield's settings hook, filled by llama_core (see code_scanner.py)")
    internal.oss = _oss_module(f"{name}.oss")  # type: ignore[attr-defined]
    sys.modules[name], sys.modules[f"{name}.oss"] = internal, internal.oss  # type: ignore[attr-defined]


def _oss_module(name: str) -> types.ModuleType:
    """codeshield's `oss` settings, with semgrep-core linked where it can be (None: semgrep off)."""
    spec = importlib.util.find_spec("codeshield.insecure_code_detector")
    assert spec is not None and spec.submodule_search_locations is not None  # a dependency of this package
    rules = Path(next(iter(spec.submodule_search_locations))) / "rules"
    binary = semgrep_binary()
    oss = types.ModuleType(name)
    oss.RULES_ROOT = rules  # type: ignore[attr-defined]
    oss.ENABLE_REGEX_ANALYZER = True  # type: ignore[attr-defined]
    oss.ENABLE_SEMGREP = binary is not None  # type: ignore[attr-defined]
    oss.SEMGREP_RULE_REPO_PATH = rules / "semgrep"  # type: ignore[attr-defined]
    oss.SEMGREP_BINARY_PATH = binary  # type: ignore[attr-defined]
    oss.SEMGREP_COMMAND = [str(binary), "--experimental", "--optimizations", "all", "--metrics", "off",  # type: ignore[attr-defined]
                           "--quiet", "--json", "--config"]  # fmt: skip
    return oss


def semgrep_binary(core: Path | None = None, places: list[Path] | None = None) -> Path | None:
    """An `osemgrep` link to semgrep-core: beside it (as codeshield makes it), else in the first of
    `places` (default ~/.llama/cache/semgrep, then the temp dir) where one can be made. None, with a
    warning, when there is no semgrep-core or no place to link it."""
    core = core if core is not None else _semgrep_core()
    if core is None:
        log.warning("code_scanner_guard: semgrep-core is not installed; CodeShield runs its regex rules only.")
        return None
    places = places if places is not None else [config_dir() / "cache" / "semgrep", Path(tempfile.gettempdir()) / "llama-semgrep"]
    beside = core.with_name("osemgrep")
    if beside.is_file():  # codeshield's link from an earlier run, or one semgrep ships: never replaced
        return beside
    for place in [core.parent, *places]:
        link = place / "osemgrep"
        if os.path.lexists(link) and link.resolve() == core.resolve():
            return link
        spare = place / f".osemgrep.{os.getpid()}.{threading.get_ident()}"
        try:
            place.mkdir(parents=True, exist_ok=True)
            os.symlink(core, spare)
            os.replace(spare, link)  # atomic: another process may be linking the same place
            return link
        except OSError as e:
            log.debug("code_scanner_guard: cannot link osemgrep in %s: %s", place, e)
            with contextlib.suppress(OSError):
                spare.unlink()
    log.warning("code_scanner_guard: nowhere writable to link osemgrep to %s; CodeShield runs its regex rules only.", core)
    return None


def _semgrep_core() -> Path | None:
    spec = importlib.util.find_spec("semgrep.bin")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / "semgrep-core").is_file():
            return Path(folder) / "semgrep-core"
    from shutil import which

    found = which("semgrep-core")
    return Path(found) if found else None


# -- 2. prescan regexes for the rules that have none --------------------------------------------

CALLED = re.compile(r"\b([A-Za-z_]\w*)\s*\(")


def _prescan_fill(load: Any, pattern_class: type, oss: Any) -> Any:
    """`load_prescan_regexes` that also gives each rule without a prescan_regex one: the functions
    its semgrep patterns call (`strcpy(...)` -> `\\bstrcpy\\s*\\(`). A rule calling nothing
    nameable makes every scan of the language run semgrep, as if no rule had a prescan."""

    @functools.cache
    def filled(language: Any, usecase: Any) -> list[Any]:
        found = list(load(language, usecase))
        if not found:  # no prescans at all: codeshield already always runs semgrep
            return found
        path = oss.RULES_ROOT / "semgrep" / "_generated_" / f"{language}_{usecase}.json"
        for rule in json.loads(path.read_text())["rules"]:
            metadata = rule.get("metadata", {})
            if "prescan_regex" in metadata:
                continue
            names = sorted(set(CALLED.findall(json.dumps(_patterns(rule)))) - {"__", "_"})
            regex = rf"\b(?:{'|'.join(map(re.escape, names))})\s*\(" if names else r"(?s).?"
            found.append(pattern_class(description=rule["message"], cwe_id=metadata.get("cwe_id", ""), rule=regex,
                                       severity=rule["severity"], pattern_id=rule["id"]))  # fmt: skip
        return found

    filled._llama_filled = True  # type: ignore[attr-defined]
    return filled


def _patterns(rule: dict[str, Any]) -> list[str]:
    """The positive `pattern` strings of a semgrep rule (not pattern-not / pattern-inside)."""
    out: list[str] = []
    for key, value in rule.items():
        if key in ("pattern", "pattern-regex") and isinstance(value, str):
            out.append(value)
        elif key in ("patterns", "pattern-either") and isinstance(value, list):
            out += [p for item in value if isinstance(item, dict) for p in _patterns(item)]
    return out
