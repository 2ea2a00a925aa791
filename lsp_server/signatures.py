"""A definition's signature as the model reads it: the fourth signal of hybrid search.

A chunk's own vector is the whole body, where the definition's name and parameters are a
few words among hundreds. The signature text is only those: the enclosing class's name and
the definition's first line, identifiers split into words and keywords left out
(`class Message: def get_content_charset(self, failobj=None):` -> "message get content
charset failobj none"). Hybrid search adds the best cosine between the query and the
signatures defined in a candidate's lines; semantic search adds it to each chunk's cosine,
and BM25 reads the signatures as a field (issue 16, docs/BENCHMARKS.md rows 32-44).

The vectors live in the embedding cache, keyed like chunk texts: a sync embeds the
signatures of the files it writes, so a search finds them there; those it does not find (an
index from an older version, or an embedder that failed meanwhile) it embeds, a few per
search (EMBED_PER_SEARCH), once.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import tokens
from .chunking import Chunk
from .errors import EmbeddingError
from .symbols import Symbol

if TYPE_CHECKING:
    from .embedding import Embedder
    from .state import EmbeddingCache

log = logging.getLogger(__name__)

# Keywords of definition lines: they say nothing about what a definition does, and every
# signature would share them.
KEYWORDS = frozenset({
    "def", "self", "cls", "function", "async", "public", "private", "protected", "static", "export",
    "const", "let", "var", "class", "func", "fn", "pub", "return", "returns", "default", "abstract",
    "override", "readonly", "interface", "type", "struct", "impl", "void",
})
MAX_LINE_CHARS = 200
# Signatures a search embeds at most when the cache lacks them (an index from an earlier
# version, or one whose first index is still embedding): 30 cost the bundled model 55 ms
# here (2 cores), so a search stays quick while the cache fills.
EMBED_PER_SEARCH = 32


def text(name: str, container: str | None, line: str = "") -> str:
    """The signature text of a definition from its name, its container and its first line."""
    # Whole words only: `get_type` keeps its "type", `def` and `self` go.
    words = [p for w in tokens.words(line[:MAX_LINE_CHARS]) if w not in KEYWORDS
             for p in tokens.split_identifier(w)] or tokens.split_identifier(name)
    owner = tokens.split_identifier(container.rsplit(".", 1)[-1]) if container else []
    return " ".join([*owner, *words])


def of_chunk(content: str, start_line: int, end_line: int, symbol: str | None,
             defined: Iterable[Symbol]) -> list[str]:
    """Signature texts of the definitions whose name is in these lines (1-based); a chunk that
    defines none (the middle of a long function) takes its own symbol's."""
    lines = content.split("\n")
    out = [text(sym.name, sym.container, _line(lines, sym.selection_range[0] + 1 - start_line))
           for sym in defined if start_line <= sym.selection_range[0] + 1 <= end_line]
    if not out and symbol:
        container, _, name = symbol.rpartition(".")
        out.append(text(name, container or None))
    return out


def by_chunk(chunks: Sequence[Chunk], defined: Iterable[Symbol]) -> list[list[str]]:
    """Each chunk's signature texts, for a file's chunks in order (they cover the file once):
    what a sync stores for BM25 and embeds, the same texts of_chunk gives a search."""
    starts = [c.start_line for c in chunks]
    found: dict[int, list[Symbol]] = {}
    for sym in defined:
        i = bisect.bisect_right(starts, sym.selection_range[0] + 1) - 1
        if i >= 0:
            found.setdefault(i, []).append(sym)
    return [of_chunk(c.content, c.start_line, c.end_line, c.symbol, found.get(i, ())) for i, c in enumerate(chunks)]


def _line(lines: list[str], i: int) -> str:
    return lines[i] if 0 <= i < len(lines) else ""


def vectors(cache: EmbeddingCache, embedder: Embedder, key: str, texts: Sequence[str],
            embed_at_most: int | None = None) -> dict[str, np.ndarray]:
    """Vectors of these texts by text: from the cache, the rest (up to ``embed_at_most``)
    embedded now and cached. Those left out, or that a failing embedder could not embed,
    are missing from the answer: the signal counts 0 for them."""
    unique = list(dict.fromkeys(texts))
    found = dict(zip(unique, cache.get_many(key, unique)))
    missing = [t for t, v in found.items() if v is None][:embed_at_most]
    if missing:
        try:
            fresh = embedder.embed_documents(missing)
        except EmbeddingError as exc:
            log.info("signatures not embedded (%s): the signal counts 0 for %d of them", exc, len(missing))
            fresh = None
        if fresh is not None:
            cache.put_many(key, missing, fresh)
            found.update(zip(missing, fresh))
    return {t: v for t, v in found.items() if v is not None}
