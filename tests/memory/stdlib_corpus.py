"""Real text that ships with every Python: standard-library modules' docstrings, one document each,
and questions in plain words labelled with the modules that answer them (the retrieval eval of issue 14).

    docs = documents()          # {"csv": "csv\n\nCSV parsing and writing. ...", ...}, in MODULES order
    for question, answers in QUESTIONS: ...

A module's document is its name, `inspect.getdoc(module)`, then one line per public top-level class
or function: its name and the first paragraph of its own docstring (sorted by name, at most
MAX_MEMBERS). Modules are a fixed table (modules removed in 3.12 and 3.13 left out), so the corpus is
the same on every run of one Python; one that does not import here (a platform's own), or whose
document has fewer than MIN_WORDS words, is skipped.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import warnings
from types import ModuleType

MIN_WORDS = 20
MAX_MEMBERS = 60

# fmt: off
MODULES: tuple[str, ...] = (
    "abc", "argparse", "array", "ast", "asyncio", "atexit", "base64", "bdb", "binascii", "bisect", "builtins",
    "bz2", "cProfile", "calendar", "cmath", "cmd", "code", "codecs", "codeop", "collections", "collections.abc",
    "colorsys", "compileall", "concurrent.futures", "configparser", "contextlib", "contextvars", "copy", "copyreg",
    "csv", "ctypes", "curses", "dataclasses", "datetime", "dbm", "decimal", "difflib", "dis", "doctest", "email",
    "email.message", "email.mime.text", "email.utils", "encodings", "enum", "errno", "faulthandler", "fcntl",
    "filecmp", "fileinput", "fnmatch", "fractions", "ftplib", "functools", "gc", "getopt", "getpass", "gettext",
    "glob", "graphlib", "grp", "gzip", "hashlib", "heapq", "hmac", "html", "html.parser", "http", "http.client",
    "http.cookies", "http.server", "imaplib", "importlib", "importlib.metadata", "importlib.resources", "inspect",
    "io", "ipaddress", "itertools", "json", "keyword", "linecache", "locale", "logging", "logging.handlers",
    "lzma", "mailbox", "marshal", "math", "mimetypes", "mmap", "modulefinder", "multiprocessing", "netrc",
    "numbers", "opcode", "operator", "optparse", "os", "pathlib", "pdb", "pickle", "pickletools", "pkgutil",
    "platform", "plistlib", "poplib", "pprint", "profile", "pstats", "pty", "pwd", "py_compile", "pyclbr",
    "pydoc", "queue", "quopri", "random", "re", "readline", "reprlib", "resource", "rlcompleter", "runpy", "sched",
    "secrets", "select", "selectors", "shelve", "shlex", "shutil", "signal", "site", "smtplib", "socket",
    "socketserver", "sqlite3", "ssl", "stat", "statistics", "string", "stringprep", "struct", "subprocess",
    "symtable", "sys", "sysconfig", "syslog", "tabnanny", "tarfile", "tempfile", "termios", "textwrap",
    "threading", "time", "timeit", "token", "tokenize", "tomllib", "trace", "traceback", "tracemalloc", "tty",
    "types", "typing", "unicodedata", "unittest", "unittest.mock", "urllib.error", "urllib.parse",
    "urllib.request", "urllib.robotparser", "uuid", "venv", "warnings", "wave", "weakref", "webbrowser",
    "wsgiref", "xml.dom.minidom", "xml.etree.ElementTree", "xml.sax", "xmlrpc.client", "xmlrpc.server",
    "zipapp", "zipfile", "zipimport", "zlib", "zoneinfo",
)

# (question, the modules that answer it: a hit is any of them)
QUESTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("How do I read and write CSV files?", ("csv",)),
    ("How can my script accept command-line options and arguments?", ("argparse", "getopt", "optparse")),
    ("How do I save Python objects to a file and load them back later?", ("pickle", "shelve", "marshal")),
    ("How do I turn a dictionary into JSON text and parse it back?", ("json",)),
    ("How do I compress a file with gzip?", ("gzip", "zlib")),
    ("How do I add a number of days to a date?", ("datetime",)),
    ("How do I search text with a regular expression?", ("re",)),
    ("How do I pick a random element from a list or shuffle it?", ("random", "secrets")),
    ("How do I compute the SHA-256 hash of some bytes?", ("hashlib", "hmac")),
    ("How do I run another program and capture its output?", ("subprocess",)),
    ("How do I create a temporary file that is deleted automatically?", ("tempfile",)),
    ("How do I copy a whole directory tree to another place?", ("shutil",)),
    ("How do I find all file names matching a pattern like *.txt?", ("glob", "fnmatch", "pathlib")),
    ("How do I send an email through an SMTP server?", ("smtplib",)),
    ("How do I extract the files of a ZIP archive?", ("zipfile",)),
    ("How do I write log messages with severity levels such as warning and error?", ("logging", "logging.handlers")),
    ("How do I write unit tests for my functions?", ("unittest", "doctest")),
    ("How do I run a function in another thread?", ("threading", "concurrent.futures")),
    ("How do I pass work between producer and consumer threads safely?", ("queue",)),
    ("How do I measure how long a small snippet of code takes to run?", ("timeit",)),
    ("Where does my program spend its time? I want to profile it.", ("cProfile", "profile", "pstats")),
    ("How do I store rows in a SQLite database?", ("sqlite3",)),
    ("How do I read settings from an INI configuration file?", ("configparser",)),
    ("How do I split a URL into scheme, host, path and query?", ("urllib.parse",)),
    ("How do I open a TCP connection to another host?", ("socket", "socketserver")),
    ("How do I download a web page over HTTP?", ("urllib.request", "http.client")),
    ("How do I encode binary data as base64 text?", ("base64", "binascii")),
    ("How do I do exact decimal arithmetic for amounts of money?", ("decimal",)),
    ("How do I compute the mean, median and standard deviation of numbers?", ("statistics",)),
    ("How do I show the differences between two versions of a text?", ("difflib",)),
    ("How do I wrap a long paragraph to a fixed line width?", ("textwrap",)),
    ("How do I insert into a sorted list and keep it sorted?", ("bisect",)),
    ("How do I get a priority queue where the smallest item comes out first?", ("heapq", "queue")),
    ("How do I count how many times each word appears?", ("collections",)),
    ("How do I define a set of named constants as an enumeration?", ("enum",)),
    ("How do I declare a class that mostly holds fields, with __init__ written for me?", ("dataclasses",)),
    ("How do I make a deep copy of a nested object?", ("copy",)),
    ("How do I parse an XML document into a tree of elements?", ("xml.etree.ElementTree", "xml.dom.minidom", "xml.sax")),
    ("How do I work with file system paths as objects?", ("pathlib", "os")),
    ("How do I write concurrent code with async and await and an event loop?", ("asyncio",)),
    ("How do I generate a universally unique identifier?", ("uuid",)),
    ("How do I read a password from the terminal without echoing it?", ("getpass",)),
    ("How do I check whether an IP address belongs to a network?", ("ipaddress",)),
    ("How do I pack integers and floats into bytes laid out like a C struct?", ("struct",)),
    ("How do I cache the results of an expensive function?", ("functools",)),
    ("How do I convert between time zones with the IANA database?", ("zoneinfo",)),
    ("How do I read a TOML file?", ("tomllib",)),
    ("How do I serve files over HTTP from the current directory?", ("http.server",)),
    ("How do I replace an object with a fake during a test?", ("unittest.mock",)),
    ("How do I run a function on several CPU cores using processes?", ("multiprocessing", "concurrent.futures")),
)
# fmt: on


def _import(name: str) -> ModuleType | None:
    try:
        with warnings.catch_warnings():  # a deprecated module's warning is no concern of the corpus
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except ImportError:
        return None


def _first_paragraph(doc: object) -> str:
    return inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ") if isinstance(doc, str) else ""


def document(module: ModuleType) -> str:
    """The module's document: name, docstring, then `member: first paragraph` lines."""
    lines = [module.__name__, inspect.getdoc(module) or ""]
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    members = 0
    for name in sorted(set(names)):
        obj = getattr(module, name, None)
        if not (inspect.isclass(obj) or inspect.isroutine(obj)) or members >= MAX_MEMBERS:
            continue
        summary = _first_paragraph(obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__)
        if summary:  # a class's own docstring only: getdoc would lend it `object`'s
            lines.append(f"{name}: {summary}")
            members += 1
    return "\n\n".join(line for line in lines if line)


@functools.cache
def documents() -> dict[str, str]:
    """{module name: its document}, in MODULES order, modules that do not import or say too little left out."""
    out = {}
    for name in MODULES:
        module = _import(name)
        text = document(module) if module is not None else ""
        if len(text.split()) >= MIN_WORDS:
            out[name] = text
    return out
