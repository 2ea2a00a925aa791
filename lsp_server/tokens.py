"""Identifier splitting, so `parse_header`, `parseHeader` and `ParseHeader` all meet "parse header"."""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+")
# Boundaries inside an identifier: lower→Upper, ACRONYMWord, letter↔digit.
_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def split_identifier(word: str) -> list[str]:
    """Lower-case parts of one identifier: "HTTPRequest_v2" -> ["http", "request", "v", "2"]."""
    return [p.lower() for p in _PART.findall(word)]


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
