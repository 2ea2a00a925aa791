"""Identifier splitting, so `parse_header`, `parseHeader` and `ParseHeader` all meet "parse header"."""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+")


def segments(name: str) -> tuple[tuple[int, int], ...]:
    """(start, end) of the words of an identifier: split at non-alphanumerics, lower->Upper,
    ACRONYM->Word (`HTTPRequest` -> HTTP, Request) and letter<->digit boundaries."""
    out: list[tuple[int, int]] = []
    start = -1
    n = len(name)
    for i, c in enumerate(name):
        if not c.isalnum():
            if start >= 0:
                out.append((start, i))
                start = -1
            continue
        if start < 0:
            start = i
            continue
        prev = name[i - 1]
        if ((c.isupper() and (prev.islower() or prev.isdigit()))
                or (c.isupper() and prev.isupper() and i + 1 < n and name[i + 1].islower())
                or c.isdigit() != prev.isdigit()):
            out.append((start, i))
            start = i
    if start >= 0:
        out.append((start, n))
    return tuple(out)


def split_identifier(word: str) -> list[str]:
    """Lower-case parts of one identifier: "HTTPRequest_v2" -> ["http", "request", "v", "2"].
    The same words the symbol matcher sees (segments), so search and go-to-symbol agree."""
    return [word[a:b].lower() for a, b in segments(word)]


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def expand_identifiers(text: str) -> str:
    """The text with every compound identifier followed by its parts, for the BM25 analyzer.

    The analyzer keeps `parse_header` whole, so its parts are appended; the whole
    identifier stays too, so an exact identifier query still scores highest.
    """
    out: list[str] = []
    for word in words(text):
        parts = split_identifier(word)
        out.append(word.lower())
        if len(parts) > 1:
            out.extend(parts)
    return " ".join(out)


def query_terms(text: str) -> list[str]:
    """Lower-case terms of a query, identifiers included whole and in parts."""
    return expand_identifiers(text).split()
