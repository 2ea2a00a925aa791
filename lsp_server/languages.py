"""Which language a file is in, and the tree-sitter grammar and tags query for it.

Grammars come from the official per-language wheels, which bundle the compiled
parser and ship ``queries/tags.scm``; nothing is downloaded at run time.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import stat
from importlib import resources
from pathlib import PurePath

import tree_sitter

log = logging.getLogger(__name__)

# language id -> (module, attribute returning the grammar pointer)
_GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "csharp": ("tree_sitter_c_sharp", "language"),
    "ruby": ("tree_sitter_ruby", "language"),
    "php": ("tree_sitter_php", "language_php"),
    "bash": ("tree_sitter_bash", "language"),
    "lua": ("tree_sitter_lua", "language"),
    "scala": ("tree_sitter_scala", "language"),
    "kotlin": ("tree_sitter_kotlin", "language"),
}

# The TypeScript grammars extend JavaScript; their tags.scm holds only the additions.
_TAGS_INHERIT: dict[str, tuple[str, ...]] = {
    "typescript": ("javascript", "typescript"),
    "tsx": ("javascript", "typescript"),
}
# Package directories that hold a grammar's queries, when they differ from the module.
_QUERY_PACKAGES: dict[str, tuple[str, ...]] = {
    "csharp": ("tree_sitter_c-sharp", "tree_sitter_c_sharp"),
}

_EXTENSIONS: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".pyw": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp",
    ".cs": "csharp",
    ".rb": "ruby", ".rake": "ruby",
    ".php": "php",
    ".sh": "bash", ".bash": "bash", ".zsh": "bash",
    ".lua": "lua",
    ".scala": "scala", ".sc": "scala",
    ".kt": "kotlin", ".kts": "kotlin",
    # Text files without a grammar here: indexed with the line splitter.
    ".md": "markdown", ".markdown": "markdown", ".rst": "rst", ".txt": "text",
    ".json": "json", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".ini": "ini", ".cfg": "ini",
    ".xml": "xml", ".html": "html", ".htm": "html", ".css": "css", ".scss": "scss", ".less": "less",
    ".sql": "sql", ".proto": "protobuf", ".graphql": "graphql", ".gql": "graphql",
    ".swift": "swift", ".m": "objc", ".mm": "objc", ".dart": "dart", ".ex": "elixir", ".exs": "elixir",
    ".erl": "erlang", ".hs": "haskell", ".ml": "ocaml", ".mli": "ocaml", ".clj": "clojure",
    ".r": "r", ".jl": "julia", ".pl": "perl", ".pm": "perl", ".vue": "vue", ".svelte": "svelte",
    ".tf": "terraform", ".gradle": "groovy", ".groovy": "groovy", ".zig": "zig", ".nim": "nim",
    ".ps1": "powershell", ".vim": "vim", ".el": "elisp", ".fs": "fsharp", ".cmake": "cmake",
}
_FILENAMES: dict[str, str] = {
    "Makefile": "make", "makefile": "make", "GNUmakefile": "make", "Dockerfile": "dockerfile",
    "CMakeLists.txt": "cmake", "Rakefile": "ruby", "Gemfile": "ruby", "Jenkinsfile": "groovy",
}


# Interpreters named on a `#!` line -> language id, for scripts without an extension.
_INTERPRETERS: dict[str, str] = {
    "python": "python", "pypy": "python", "bash": "bash", "sh": "bash", "dash": "bash", "zsh": "bash",
    "ksh": "bash", "ash": "bash", "node": "javascript", "nodejs": "javascript", "deno": "typescript",
    "bun": "typescript", "ts-node": "typescript", "tsx": "typescript", "ruby": "ruby", "php": "php",
    "lua": "lua", "luajit": "lua", "scala": "scala", "kotlin": "kotlin", "perl": "perl", "rscript": "r",
    "julia": "julia", "elixir": "elixir", "escript": "erlang", "runghc": "haskell", "runhaskell": "haskell",
    "pwsh": "powershell", "groovy": "groovy", "swift": "swift", "ocaml": "ocaml", "tclsh": "tcl",
    "wish": "tcl", "fish": "fish", "awk": "awk", "gawk": "awk", "make": "make",
}
# A `#!` line longer than this is no interpreter line we know; reading stops here.
SHEBANG_BYTES = 256


def language_for(path: str | PurePath) -> str | None:
    """The language id of a path, or None when it is not a text file we index."""
    p = PurePath(path)
    if p.name in _FILENAMES:
        return _FILENAMES[p.name]
    return _EXTENSIONS.get(p.suffix.lower())


def language_from_shebang(head: bytes) -> str | None:
    """The language a `#!` first line names (`#!/usr/bin/env python3`, `#!/bin/bash -e`), or None."""
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    words = line.split()
    if words and words[0].rsplit("/", 1)[-1] == "env":
        # `env -S python3 -u`, `env PYTHONPATH=. python3`: the first word that is neither.
        words = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    if not words:
        return None
    name = words[0].rsplit("/", 1)[-1].lower()
    base = name.rstrip("0123456789.")  # python3.12 -> python, perl5 -> perl
    return _INTERPRETERS.get(name) or _INTERPRETERS.get(base)


def sniff_language(path: str | PurePath) -> str | None:
    """language_for, and for a file with no extension the language of its `#!` line.

    Opens the file non-blocking and reads SHEBANG_BYTES at most, so a FIFO or device that
    slipped past the caller's regular-file check costs nothing; callers filter size first."""
    found = language_for(path)
    p = PurePath(path)
    if found is not None or p.suffix:
        return found
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        head = os.read(fd, SHEBANG_BYTES)
    except OSError:
        return None
    finally:
        os.close(fd)
    return language_from_shebang(head)


def has_grammar(language: str) -> bool:
    return language in _GRAMMARS


def parsed_languages() -> list[str]:
    """Languages chunked along a syntax tree (the rest are split by lines)."""
    return [lang for lang in _GRAMMARS if grammar(lang) is not None]


@functools.cache
def grammar(language: str) -> tree_sitter.Language | None:
    spec = _GRAMMARS.get(language)
    if spec is None:
        return None
    module_name, attr = spec
    try:
        module = importlib.import_module(module_name)
        return tree_sitter.Language(getattr(module, attr)())
    except Exception as exc:  # a broken or missing wheel costs that language only
        log.warning("tree-sitter grammar for %s unavailable: %s", language, exc)
        return None


def parser(language: str) -> tree_sitter.Parser | None:
    lang = grammar(language)
    return tree_sitter.Parser(lang) if lang is not None else None


def _read_query_file(language: str, filename: str) -> str | None:
    module_name = _GRAMMARS[language][0]
    for package in _QUERY_PACKAGES.get(language, (module_name,)):
        try:
            path = resources.files(module_name).joinpath("..", package, "queries", filename)
            if path.is_file():
                return path.read_text(encoding="utf-8")
        except (FileNotFoundError, ModuleNotFoundError):
            continue
    return None


@functools.cache
def tags_query(language: str) -> tree_sitter.Query | None:
    """The upstream ``tags.scm`` query for a language, or None when its wheel has none."""
    lang = grammar(language)
    if lang is None:
        return None
    sources = []
    for source_lang in _TAGS_INHERIT.get(language, (language,)):
        text = _read_query_file(source_lang if source_lang in _GRAMMARS else language, "tags.scm")
        if text:
            sources.append(text)
    if not sources:
        return None
    try:
        return tree_sitter.Query(lang, "\n".join(sources))
    except tree_sitter.QueryError as exc:
        log.warning("tags query for %s does not compile: %s", language, exc)
        return None
