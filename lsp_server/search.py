"""Answer a query from a folder's index: keyword (BM25), semantic (dense) or hybrid.

Hybrid fuses four signals with weights rather than reciprocal ranks: the dense score
(min-max normalised), the BM25 score (divided by the best), how well the names defined in a
chunk match the query's words (Dice overlap of identifier parts plus how much of a name the
query contains, from the symbol index), and how close the query is to the signatures of
those definitions by meaning (signatures.py). docs/BENCHMARKS.md has the measurements
behind the weights. Results from the same file whose lines overlap are merged into one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from . import signatures, tokens
from .errors import EmbeddingError, InvalidInput
from .query import Query, Result, make
from .store import EVERYWHERE, Hit, Where
from .symbols import Symbol

if TYPE_CHECKING:
    from .index import WorkspaceIndex

DENSE_WEIGHT = 0.5
# 0.5 -> 0.3 with the stronger name signal (issue 16): BM25 already counts the name's words,
# and at 0.5 it let a chunk that repeats the query's words beat the one that defines them
# (rxjs doc queries 0.337 -> 0.352, the stdlib corpus unchanged).
KEYWORD_WEIGHT = 0.3
# Weight of the best match between the query's words and a name defined in the chunk.
# 0.5 -> 1.5 (issue 16): the name is the surest sign of the definition asked for, on
# sentences as on identifiers; both corpora gain on both query sets (docs/BENCHMARKS.md).
SYMBOL_WEIGHT = 1.5
# An identifier-shaped query (`get_content_charset`, `toPromise`, `Foo.bar`) is answered by
# the words it spells more than by what it means: the name signal and BM25 over dense
# (issue 16: names typed as such, stdlib 0.964 -> 0.972 MRR@10, rxjs 0.928 -> 0.930).
IDENTIFIER_DENSE_WEIGHT = 0.3
IDENTIFIER_KEYWORD_WEIGHT = 0.5
# Weight of the best cosine between the query and a signature defined in the chunk (issue
# 16, 800-char chunks: stdlib doc queries 0.487 -> 0.510 MRR@10, rxjs 0.352 -> 0.381;
# identifiers 0.950 -> 0.951 and 0.923 -> 0.926). A raw cosine: min-max over the candidates
# did no better on stdlib and worse on rxjs; 1.0 and 1.5 are within 0.004 on both corpora.
SIGNATURE_WEIGHT = 1.2
# Semantic mode ranks its dense candidates by their cosine plus this x the best signature
# cosine: still by meaning alone, but a definition's name and parameters count (issue 16:
# stdlib doc queries 0.382 -> 0.456 MRR@10, rxjs 0.245 -> 0.328; identifiers 0.580 -> 0.728
# and 0.443 -> 0.670; 0.3 and 1.0 are within 0.01 but on rxjs names).
SEMANTIC_SIGNATURE_WEIGHT = 0.5
# Share of name_match given to containment, next to Dice: a sentence holds all of a short
# name's words ("Return the parsed metadata" -> metadata) but Dice divides by its length.
CONTAINED_WEIGHT = 0.4
# Candidates fetched from each retriever per result asked for.
OVERSAMPLE = 3
MIN_CANDIDATES = 30
# A hybrid query's BM25 search runs here while its query is embedded and searched densely.
_KEYWORD_LANE = ThreadPoolExecutor(4, "cc-keyword")


def scope(index: WorkspaceIndex, q: Query) -> Where | None:
    """Which chunks the query's globs and languages keep; None when nothing can match."""
    languages = frozenset(q.languages) if q.languages else None
    paths = None
    inc, exc = q.include_spec, q.exclude_spec
    if inc is not None or exc is not None:
        paths = frozenset(p for p in index.files.all()
                          if (inc is None or inc.match_file(p)) and (exc is None or not exc.match_file(p)))
        if not paths:
            return None
    return Where(languages, paths)


def _normalise(hits: list[Hit], min_max: bool) -> dict[str, float]:
    if not hits:
        return {}
    scores = [h.score for h in hits]
    top, low = max(scores), min(scores)
    if not min_max:
        return {h.id: (h.score / top if top > 0 else 0.0) for h in hits}
    span = top - low
    return {h.id: ((h.score - low) / span if span > 0 else 1.0) for h in hits}


def fuse(dense: list[Hit], keyword: list[Hit], dense_weight: float = DENSE_WEIGHT,
         keyword_weight: float = KEYWORD_WEIGHT, symbol: dict[str, float] | None = None,
         symbol_weight: float = SYMBOL_WEIGHT, signature: dict[str, float] | None = None,
         signature_weight: float = SIGNATURE_WEIGHT) -> list[tuple[Hit, float]]:
    """Weighted sum of per-list normalised scores; a hit missing from a list scores 0 there.
    ``symbol`` and ``signature`` hold name_match scores and signature cosines by hit id (see
    definition_scores)."""
    d = _normalise(dense, min_max=True)
    k = _normalise(keyword, min_max=False)
    s = symbol or {}
    g = signature or {}
    by_id = {h.id: h for h in [*keyword, *dense]}
    fused = [(by_id[i], dense_weight * d.get(i, 0.0) + keyword_weight * k.get(i, 0.0)
              + symbol_weight * s.get(i, 0.0) + signature_weight * g.get(i, 0.0)) for i in by_id]
    fused.sort(key=lambda pair: pair[1], reverse=True)
    return fused


def by_meaning(dense: list[Hit], signature: dict[str, float],
               signature_weight: float = SEMANTIC_SIGNATURE_WEIGHT) -> list[tuple[Hit, float]]:
    """Semantic mode's order: each chunk's cosine plus signature_weight x its best signature
    cosine (see definition_scores), best first."""
    ranked = [(h, h.score + signature_weight * signature.get(h.id, 0.0)) for h in dense]
    ranked.sort(key=lambda pair: pair[1], reverse=True)
    return ranked


_IDENTIFIER_QUERY = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*(?:\(\))?")


def identifier_shaped(query: str) -> bool:
    """One identifier of two or more parts, or a dotted name: `parse_header`, `toPromise`,
    `Message.get_all`, `fetch()`. A single plain word ("close") may be either shape."""
    text = query.strip()
    if not _IDENTIFIER_QUERY.fullmatch(text):
        return False
    return "." in text or text.endswith("()") or len(tokens.split_identifier(text)) > 1


def fusion_weights(query: str) -> tuple[float, float]:
    """The dense and keyword weights for this query's shape."""
    if identifier_shaped(query):
        return IDENTIFIER_DENSE_WEIGHT, IDENTIFIER_KEYWORD_WEIGHT
    return DENSE_WEIGHT, KEYWORD_WEIGHT


def query_words(query: str) -> frozenset[str]:
    """The query's words, identifiers split into their parts: "parseHeader(x)" -> parse, header, x."""
    return frozenset(p for w in tokens.words(query) for p in tokens.split_identifier(w))


def name_match(words: frozenset[str], name: str, contained_weight: float = CONTAINED_WEIGHT) -> float:
    """Dice overlap of a name's parts and the query's words (1.0 when they are the same set),
    plus contained_weight x the share of the name's parts the query holds x the square root
    of the share of the query's words they are: a long sentence that holds the whole name
    still counts, more so when the name covers more of it."""
    parts = name_parts(name, words)
    if not parts or not words:
        return 0.0
    common = len(parts & words)
    dice = 2 * common / (len(parts) + len(words))
    return dice + contained_weight * (common / len(parts)) * (common / len(words)) ** 0.5


def name_parts(name: str, words: frozenset[str]) -> set[str]:
    """A name's identifier parts, where a part that is several of the query's words written
    together ("iscoroutine", "readline") counts as those words: Python names often join
    words without `_` (issue 16: stdlib doc queries 0.478 -> 0.487)."""
    parts: set[str] = set()
    for part in tokens.split_identifier(name):
        joined = None if part in words else _joined_words(part, words)
        parts.update(joined or (part,))
    return parts


def _joined_words(part: str, words: frozenset[str]) -> list[str] | None:
    """part as two or more words of `words` (each of 2+ letters) written together, or None."""
    ways: dict[int, list[str]] = {0: []}  # end offset -> words covering part[:end]
    for start in range(len(part)):
        if start not in ways:
            continue
        for end in range(start + 2, len(part) + 1):
            if end not in ways and part[start:end] in words:
                ways[end] = [*ways[start], part[start:end]]
    found = ways.get(len(part))
    return found if found is not None and len(found) > 1 else None


def definition_scores(index: WorkspaceIndex, query: str, vector: np.ndarray | None,
                      hits: Sequence[Hit]) -> tuple[dict[str, float], dict[str, float]]:
    """Per hit, the best name_match among the names defined in its lines (functions, classes,
    methods...; the chunk's own symbol where the symbol index has none), and the best cosine
    between the query's vector and those definitions' signatures (none without a vector)."""
    words = query_words(query)
    unique = list({h.id: h for h in hits}.values())
    if vector is not None:  # the definitions' first lines are read from the chunks' text
        unique = index.store.with_content(unique)
    defined: dict[str, list[Symbol]] = {}
    names: dict[str, float] = {}
    texts: dict[str, list[str]] = {}
    for h in unique:
        if h.path not in defined:
            defined[h.path] = index.symbols.symbols_in(h.path)
        here = [sym.name for sym in defined[h.path] if h.start_line <= sym.range[0] + 1 <= h.end_line]
        if not here and h.symbol:
            here = [h.symbol.rsplit(".", 1)[-1]]
        best = max((name_match(words, n) for n in here), default=0.0) if words else 0.0
        if best > 0:
            names[h.id] = best
        if vector is not None:
            texts[h.id] = signatures.of_chunk(h.content, h.start_line, h.end_line, h.symbol, defined[h.path])
    key = index.vector_key
    if not texts or key is None:
        return names, {}
    found = signatures.vectors(index.cache, index.embedder, key, [t for ts in texts.values() for t in ts],
                               embed_at_most=signatures.EMBED_PER_SEARCH)
    cosine = {t: float(v @ vector) for t, v in found.items()}
    return names, {i: max(cosine[t] for t in ts if t in cosine) for i, ts in texts.items()
                   if any(t in cosine for t in ts)}


def retrieve(index: WorkspaceIndex, query: str, mode: str, candidates: int,
             where: Where = EVERYWHERE) -> tuple[list[Hit], list[Hit], np.ndarray | None]:
    """The dense and keyword candidate lists for a query (one is empty unless hybrid), and the
    query's vector (None when it was not embedded)."""
    terms = " ".join(tokens.query_terms(query))
    if mode == "keyword":
        return [], index.store.keyword_search(terms, candidates, where), None
    if index.vector_key is None:  # no vectors yet: words answer hybrid, semantic says why it cannot
        if mode == "semantic":
            raise no_vectors(index)
        return [], index.store.keyword_search(terms, candidates, where), None
    if mode == "semantic":
        vector = index.embedder.embed_query(query)
        return index.store.dense_search(vector, candidates, where), [], vector
    keyword = _KEYWORD_LANE.submit(index.store.keyword_search, terms, candidates, where)
    try:
        asked = index.embedder.embed_query(query)
    except EmbeddingError:  # the provider is down: keyword results still answer a hybrid query
        return [], keyword.result(), None
    return index.store.dense_search(asked, candidates, where), keyword.result(), asked


def no_vectors(index: WorkspaceIndex) -> EmbeddingError:
    """Why a search by meaning cannot run: the embedding model has never answered here."""
    reason = index.state.last_error or "the embedding model has not answered yet"
    return EmbeddingError(f"no code has vectors yet, so search by meaning cannot run ({reason}); "
                          "keyword and hybrid search find code by its words meanwhile", retryable=True)


def search(index: WorkspaceIndex, text: str, limit: int = 10, mode: str = "hybrid",
           include: Sequence[str] = (), exclude: Sequence[str] = (),
           languages: Sequence[str] = ()) -> list[Result]:
    """A search from plain arguments, validated here (faces validate once with query.make
    and call answer)."""
    return answer(index, make(text, limit, mode, include, exclude, languages))


def answer(index: WorkspaceIndex, q: Query) -> list[Result]:
    """The ranked results of a checked query."""
    where = scope(index, q)
    if where is None:
        return []
    candidates = max(q.limit * OVERSAMPLE, MIN_CANDIDATES)
    dense, keyword, vector = retrieve(index, q.text, q.mode, candidates, where)
    if q.mode == "keyword":
        ranked = [(h, h.score) for h in keyword]
    elif q.mode == "semantic":
        ranked = by_meaning(dense, definition_scores(index, q.text, vector, dense)[1])
    else:
        names, signature = definition_scores(index, q.text, vector, [*keyword, *dense])
        ranked = fuse(dense, keyword, *fusion_weights(q.text), symbol=names, signature=signature)
    return shown(index, ranked, q.limit)


def similar(index: WorkspaceIndex, rel_path: str, text: str, start_line: int, end_line: int,
            limit: int = 10) -> list[Result]:
    """Code that reads like the given lines, leaving out those lines themselves."""
    if not text.strip():
        raise InvalidInput("range", "selects no code")
    if index.vector_key is None:
        raise no_vectors(index)
    vector = index.embedder.embed_query(f"{rel_path}\n{text}")
    hits = index.store.dense_search(vector, limit + MIN_CANDIDATES)
    return shown(index, [(h, h.score) for h in hits
                         if not (h.path == rel_path and h.start_line <= end_line and start_line <= h.end_line)], limit)


def merge_overlapping(ranked: Sequence[tuple[Hit, float]], limit: int | None = None) -> list[tuple[Hit, float]]:
    """Keep the best of hits that share lines of the same file (input sorted best first),
    up to ``limit``."""
    kept: list[tuple[Hit, float]] = []
    for h, score in ranked:
        if limit is not None and len(kept) == limit:
            break
        if not any(k.path == h.path and k.start_line <= h.end_line and h.start_line <= k.end_line for k, _ in kept):
            kept.append((h, score))
    return kept


def shown(index: WorkspaceIndex, ranked: Sequence[tuple[Hit, float]], limit: int) -> list[Result]:
    """The results to show: the first ``limit`` distinct hits, with their text."""
    kept = merge_overlapping(ranked, limit)
    score_of = {h.id: score for h, score in kept}
    return [Result(index.root, h.path, h.start_line, h.end_line, round(float(score_of[h.id]), 6), h.language,
                   h.content, h.symbol or None, h.kind or None)
            for h in index.store.with_content([h for h, _ in kept])]
