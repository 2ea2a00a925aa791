"""Find the files worth indexing in a workspace, and say why the others were skipped.

Honours .gitignore at every depth plus .ignore, always skips VCS and dependency folders,
build outputs, lock files, minified bundles, binaries, oversized files and secrets. A `!`
re-include in the user's ignore files that names a path inside a skipped build or dependency
folder wins over that built-in skip; other skipped folders are never walked.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path, PurePath

import attrs
import pathspec

from .languages import language_for, sniff_language
from .settings import IndexSettings

log = logging.getLogger(__name__)

SKIP_DIRS = frozenset({
    ".git", ".hg", ".svn", ".jj", "node_modules", "bower_components", "vendor",
    ".venv", "venv", "env", ".env", "virtualenv", "__pycache__", ".mypy_cache", ".pytest_cache",
    ".ruff_cache", ".tox", ".nox", ".eggs", "site-packages",
    "dist", "build", "out", "target", ".next", ".nuxt", ".svelte-kit", ".gradle", ".idea",
    "coverage", "htmlcov", ".cache", ".terraform", ".direnv",
})
LOCK_FILES = frozenset({
    "package-lock.json", "yarn.lock", "pnpm-lock.yaml", "poetry.lock", "Pipfile.lock", "Cargo.lock",
    "composer.lock", "Gemfile.lock", "go.sum", "uv.lock", "bun.lockb", "flake.lock", "packages.lock.json",
})
GENERATED_PATTERNS = ("*.min.js", "*.min.css", "*.bundle.js", "*.map", "*-min.js", "*.chunk.js")
SECRET_PATTERNS = (
    ".env", ".env.*", "*.env", ".envrc", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "*.ppk", ".netrc", ".npmrc", ".pypirc",
    "credentials", "credentials.*", "*credentials*.json", "secrets.*", "*.secret", "*.secrets",
    ".htpasswd", "*.kdbx", "service-account*.json", "*.gpg", "*.asc",
)
# Never indexed, whatever the ignore files re-include: version control internals.
NEVER_DIRS = frozenset({".git", ".hg", ".svn", ".jj"})
BINARY_SNIFF_BYTES = 8192


@attrs.frozen
class FileInfo:
    path: str  # workspace-relative, posix separators
    size: int
    mtime_ns: int
    language: str


@attrs.define
class ScanReport:
    files: list[FileInfo] = attrs.Factory(list)
    skipped: dict[str, str] = attrs.Factory(dict)  # relative path -> reason


def is_secret(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in SECRET_PATTERNS)


def is_binary(head: bytes) -> bool:
    return b"\0" in head[:BINARY_SNIFF_BYTES]


class IgnoreRules:
    """.gitignore/.ignore files by directory, applied to paths below them."""

    def __init__(self, root: Path, settings: IndexSettings) -> None:
        self.root = root
        self.respect_gitignore = settings.respect_gitignore
        self.include = pathspec.PathSpec.from_lines("gitignore", settings.include) if settings.include else None
        self.exclude = pathspec.PathSpec.from_lines("gitignore", settings.exclude)
        self._specs: dict[str, pathspec.PathSpec | None] = {}
        self._negations: dict[str, list[list[str]]] = {}

    def _spec_for(self, rel_dir: str) -> pathspec.PathSpec | None:
        if rel_dir not in self._specs:
            lines: list[str] = []
            base = self.root / rel_dir if rel_dir else self.root
            for name in (".gitignore", ".ignore"):
                try:
                    lines.extend((base / name).read_text(encoding="utf-8", errors="replace").splitlines())
                except OSError:
                    continue
            self._specs[rel_dir] = pathspec.PathSpec.from_lines("gitignore", lines) if lines else None
            self._negations[rel_dir] = [n for n in map(_negation_parts, lines) if n]
        return self._specs[rel_dir]

    def _decide(self, rel_path: str, is_dir: bool) -> tuple[bool, int, list[str] | None] | None:
        """As in git, the deepest ignore file with a matching pattern decides, and within a
        file the last matching pattern: (ignored, depth of that file's folder, the parts of
        the deciding `!` pattern), or None when no pattern matches."""
        if not self.respect_gitignore:
            return None
        parts = rel_path.split("/")
        for depth in range(len(parts) - 1, -1, -1):
            spec = self._spec_for("/".join(parts[:depth]))
            if spec is None:
                continue
            sub = "/".join(parts[depth:]) + ("/" if is_dir else "")
            found = spec.check_file(sub)
            if found.include is not None:
                index = found.index
                negation = None if found.include or index is None else _negation_parts(
                    str(spec.patterns[index].pattern))
                return found.include, depth, negation
        return None

    def ignored(self, rel_path: str, is_dir: bool) -> bool:
        decided = self._decide(rel_path, is_dir)
        return decided is not None and decided[0]

    def reincluded(self, rel_path: str, anchor: int) -> bool:
        """Whether a `!` pattern re-includes a file below the built-in skipped folder
        rel_path.split("/")[anchor], naming that folder (see _may_reach)."""
        decided = self._decide(rel_path, is_dir=False)
        if decided is None or decided[0]:
            return False
        _, depth, negation = decided
        return negation is not None and _may_reach(negation, rel_path.split("/")[depth:], anchor - depth)

    def reaches(self, rel_dir: str, anchor: int) -> bool:
        """Whether a `!` pattern could re-include rel_dir or a path below it, which lies in
        the built-in skipped folder rel_dir.split("/")[anchor]: then the folder is walked.
        Reads no ignore file below rel_dir but its own."""
        if not self.respect_gitignore:
            return False
        parts = rel_dir.split("/")
        for depth in range(len(parts), -1, -1):
            base = "/".join(parts[:depth])
            if self._spec_for(base) is None:
                continue
            if any(_may_reach(neg, parts[depth:], anchor - depth) for neg in self._negations[base]):
                return True
        return False

    def selected(self, rel_path: str) -> bool:
        """The user's include/exclude globs from settings."""
        if self.exclude.match_file(rel_path):
            return False
        return self.include is None or self.include.match_file(rel_path)


def _negation_parts(line: str) -> list[str] | None:
    """A `!` line of an ignore file as path parts relative to its folder (`**` for any
    depth), or None for any other line."""
    line = line.rstrip()
    if not line.startswith("!"):
        return None
    pattern = line[1:].rstrip("/")
    if not pattern.strip("/"):
        return None
    if "/" in pattern:  # anchored to the ignore file's folder
        return [p for p in pattern.lstrip("/").split("/") if p]
    return ["**", pattern]  # a bare name matches at any depth


def _literal(part: str) -> bool:
    return bool(re.sub(r"\[[^]]*\]|[*?]", "", part))


def _may_reach(pattern: list[str], parts: list[str], named: int) -> bool:
    """Whether pattern can match the path `parts` or, for a folder, a path below it, with
    parts[named] (the built-in skipped folder) spelled by a pattern part holding a literal
    character: `!build/keep.py` and `!**/dist/x.js` name their folder, `!*/`, `!*.py` and
    `!keep.log` do not, so a generic whitelist never opens node_modules. named < 0: the
    ignore file lies inside that folder, and anything it re-includes counts."""
    if not parts:  # the ignore file's own folder: any re-include in it reaches below
        return True

    def walk(pi: int, i: int) -> bool:
        if pi == len(pattern):  # a folder at or below the named one is re-included whole
            return i - 1 >= named
        head = pattern[pi]
        if head == "**":
            return walk(pi + 1, i) or (i < len(parts) - 1 and i != named and walk(pi, i + 1))
        if not fnmatch.fnmatchcase(parts[i], head) or (i == named and not _literal(head)):
            return False
        return True if i == len(parts) - 1 else walk(pi + 1, i + 1)

    return walk(0, 0)


def classify(path: Path, rel_path: str, st: os.stat_result, max_bytes: int) -> tuple[str | None, str | None]:
    """(language, None) for a file to index, or (None, why not). Judged from the name and
    size; a file with no extension and no known name costs one read of its `#!` line."""
    name = rel_path.rsplit("/", 1)[-1]
    if is_secret(name):
        return None, "may hold secrets"
    if name in LOCK_FILES:
        return None, "lock file"
    if any(fnmatch.fnmatchcase(name, p) for p in GENERATED_PATTERNS):
        return None, "minified or generated"
    too_big = f"larger than {max_bytes // 1024} KiB"
    language = language_for(name)
    if language is None and not PurePath(name).suffix:
        if st.st_size > max_bytes:
            return None, too_big
        language = sniff_language(path)
    if language is None:
        return None, "not a known source or text type"
    if st.st_size > max_bytes:
        return None, too_big
    return language, None


def scan(root: Path, settings: IndexSettings) -> ScanReport:
    """Every indexable file under root, reading no file content but the `#!` line of a file
    without an extension.

    Binary detection needs content, so it happens when the file is read for chunking.
    """
    report = ScanReport()
    for info_or_skip in _walk(root, settings):
        if isinstance(info_or_skip, FileInfo):
            report.files.append(info_or_skip)
        else:
            rel, reason = info_or_skip
            report.skipped[rel] = reason
    report.files.sort(key=lambda f: f.path)
    return report


def _walk(root: Path, settings: IndexSettings) -> Iterator[FileInfo | tuple[str, str]]:
    rules = IgnoreRules(root, settings)
    max_bytes = settings.max_file_size_kb * 1024
    seen_dirs: set[tuple[int, int]] = set()
    # (folder, index of the part that is a built-in skipped folder, or -1): below such a
    # folder only what a `!` pattern naming it re-includes counts.
    stack: list[tuple[str, int]] = [("", -1)]
    while stack:
        rel_dir, anchor = stack.pop()
        abs_dir = root / rel_dir if rel_dir else root
        try:
            st = abs_dir.stat()
            key = (st.st_dev, st.st_ino)
            if key in seen_dirs:
                yield rel_dir, "symlink loop"
                continue
            seen_dirs.add(key)
            entries = list(os.scandir(abs_dir))
        except OSError as exc:
            yield rel_dir or ".", f"unreadable directory: {exc.strerror or exc}"
            continue
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            name_problem = bad_name(entry.name)
            if name_problem:
                yield printable(rel), name_problem
                continue
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                yield rel, f"cannot stat: {exc.strerror or exc}"
                continue
            if entry.is_symlink() and not inside(root, entry.path):
                yield rel, "symlink to outside the workspace"
                continue
            if stat.S_ISDIR(st.st_mode):
                if entry.name in NEVER_DIRS or rules.ignored(rel, is_dir=True):
                    continue
                inner = anchor
                if inner < 0 and entry.name in SKIP_DIRS:
                    inner = rel.count("/")
                # A skipped folder is pruned unless a `!` pattern may re-include something in it.
                if inner >= 0 and not rules.reaches(rel, inner):
                    continue
                if entry.is_symlink():
                    target = Path(os.path.realpath(entry.path))
                    if target == root or root in target.parents:
                        yield rel, "symlink into the workspace"
                        continue
                stack.append((rel, inner))
            elif stat.S_ISREG(st.st_mode):
                if rules.ignored(rel, is_dir=False) or not rules.selected(rel):
                    continue
                if anchor >= 0 and not rules.reincluded(rel, anchor):
                    continue
                language, reason = classify(Path(entry.path), rel, st, max_bytes)
                if reason:
                    yield rel, reason
                    continue
                yield FileInfo(rel, st.st_size, st.st_mtime_ns, language or "text")


def bad_name(name: str) -> str | None:
    """Why a file or folder name cannot be indexed: it must be one line of valid UTF-8."""
    if "\n" in name or "\r" in name:
        return "newline in file name"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8"
    return None


def printable(rel_path: str) -> str:
    """A path safe to log and send as JSON: undecodable bytes shown as \\xNN escapes."""
    return rel_path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def inside(root: Path, path: str | Path) -> bool:
    """Whether path, with every symlink resolved, is root or below it."""
    target = Path(os.path.realpath(path))
    return target == root or root in target.parents


def should_index(root: Path, rel_path: str, settings: IndexSettings) -> str | None:
    """The skip reason for one path (for editor events), or None when it belongs in the index."""
    parts = rel_path.split("/")
    if any(p in NEVER_DIRS for p in parts[:-1]) or ".." in parts:
        return "excluded directory"
    problem = next((r for r in map(bad_name, parts) if r), None)
    if problem:
        return problem
    if not inside(root, root / rel_path):
        return "symlink to outside the workspace"
    rules = IgnoreRules(root, settings)
    for depth in range(1, len(parts)):
        if rules.ignored("/".join(parts[:depth]), is_dir=True):
            return "ignored by .gitignore"
    if rules.ignored(rel_path, is_dir=False):
        return "ignored by .gitignore"
    anchor = next((i for i, p in enumerate(parts[:-1]) if p in SKIP_DIRS), -1)
    if anchor >= 0 and not rules.reincluded(rel_path, anchor):
        return "excluded directory"
    if not rules.selected(rel_path):
        return "outside include/exclude settings"
    try:
        st = (root / rel_path).stat()
    except OSError as exc:
        return f"cannot stat: {exc.strerror or exc}"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return classify(root / rel_path, rel_path, st, settings.max_file_size_kb * 1024)[1]
