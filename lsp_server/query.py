"""A search as the engine takes it, and what it answers: validated once, at the face.

Light on purpose (no store, no model): a forwarding CLI imports it to check its input and
to read an owner's answers without loading torch or pymilvus.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args

import attrs
import pathspec

from .errors import InvalidInput

Mode = Literal["hybrid", "semantic", "keyword"]
MODES: tuple[str, ...] = get_args(Mode)
MAX_QUERY_CHARS = 1000
MAX_LIMIT = 100


@attrs.frozen
class Result:
    root: Path
    path: str  # relative to root, posix
    start_line: int  # 1-based, inclusive
    end_line: int  # 1-based, inclusive
    score: float
    language: str
    content: str
    symbol: str | None = None
    kind: int | None = None


def check_limit(limit: object, field: str = "limit", most: int = MAX_LIMIT) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= most:
        raise InvalidInput(field, f"must be an integer from 1 to {most}")
    return limit


def validate(query: object, limit: object, mode: object) -> tuple[str, int, str]:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("query", "must be a non-empty string")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput("query", f"must be at most {MAX_QUERY_CHARS} characters")
    check_limit(limit)
    if mode not in MODES:
        raise InvalidInput("mode", f"must be one of {', '.join(MODES)}")
    return query.strip(), limit, mode  # type: ignore[return-value]


def globs(field: str, patterns: Sequence[str]) -> pathspec.PathSpec:
    """Compile gitignore-style globs; a bad one is the caller's input error, named by field."""
    try:
        return pathspec.PathSpec.from_lines("gitignore", patterns)
    except ValueError as exc:  # pathspec's GitIgnorePatternError
        raise InvalidInput(field, str(exc)) from None


@attrs.frozen
class Query:
    """A checked search: every face builds one with ``make`` and the engine trusts it."""

    text: str
    limit: int
    mode: str
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    # The globs compiled once, by make; None when there are none.
    include_spec: pathspec.PathSpec | None = attrs.field(default=None, eq=False, repr=False)
    exclude_spec: pathspec.PathSpec | None = attrs.field(default=None, eq=False, repr=False)


def make(text: object, limit: object, mode: object, include: Sequence[str] = (), exclude: Sequence[str] = (),
         languages: Sequence[str] = (), names: dict[str, str] | None = None) -> Query:
    """Validate a search once, at the face; ``names`` maps field names to the face's own
    spelling (``--include`` for the CLI), so the error names what the user typed."""
    names = names or {}
    try:
        checked_text, checked_limit, checked_mode = validate(text, limit, mode)
    except InvalidInput as exc:
        raise InvalidInput(names.get(exc.field, exc.field), str(exc).partition(": ")[2]) from None
    include_spec = globs(names.get("include", "include"), include) if include else None
    exclude_spec = globs(names.get("exclude", "exclude"), exclude) if exclude else None
    return Query(checked_text, checked_limit, checked_mode, tuple(include), tuple(exclude), tuple(languages),
                 include_spec, exclude_spec)
