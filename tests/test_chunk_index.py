"""The in-memory retrieval index: exact against brute force, consistent across writes."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pytest

from lsp_server import bm25, chunk_index
from lsp_server.chunk_index import ChunkIndex

DIM = 8


def row(id: str, text: str, vector: list[float] | None = None, path: str = "a.py",
        language: str = "python") -> dict[str, Any]:
    return {"id": id, "path": path, "language": language, "start_line": 1, "end_line": 2, "symbol": "",
            "kind": 0, "search_text": text, "embedded": vector is not None,
            "dense": vector if vector is not None else [1.0] + [0.0] * (DIM - 1)}


def reference_bm25(docs: dict[str, str], query: str, k1: float = bm25.K1, b: float = bm25.B) -> dict[str, float]:
    """BM25 written out term by term, the way Milvus Lite's sparse index scores one segment."""
    counts = {i: Counter(t.lower().split()) for i, t in docs.items()}
    avgdl = sum(sum(c.values()) for c in counts.values()) / len(docs)
    scores: dict[str, float] = {}
    for term, qtf in Counter(query.lower().split()).items():
        df = sum(1 for c in counts.values() if term in c)
        if not df:
            continue
        idf = math.log((len(docs) - df + 0.5) / (df + 0.5) + 1.0)
        for i, c in counts.items():
            if term in c:
                dl = sum(c.values())
                tf = c[term]
                scores[i] = scores.get(i, 0.0) + idf * qtf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))
    return scores


DOCS = {
    "1": "retry failed request retry backoff",
    "2": "parse header value",
    "3": "request header parse request",
    "4": "open file read bytes",
    "5": "retry",
}


def test_keyword_scores_are_the_bm25_formula() -> None:
    index = ChunkIndex(DIM)
    index.add(row(i, t) for i, t in DOCS.items())
    for query in ("retry request", "parse header header", "bytes", "nothing here"):
        got = dict(index.keyword(query, 10))
        want = reference_bm25(DOCS, query)
        assert got.keys() == want.keys(), query
        for i in want:
            assert got[i] == pytest.approx(want[i], rel=1e-6)
        assert [s for _, s in index.keyword(query, 10)] == sorted(got.values(), reverse=True)


def test_statistics_cover_the_whole_folder_however_the_chunks_arrived() -> None:
    """A chunk added alone later scores exactly as it would have among the first ones: Milvus
    Lite's per-segment statistics made a freshly saved chunk's words look rare."""
    together = ChunkIndex(DIM)
    together.add(row(i, t) for i, t in DOCS.items())
    one_by_one = ChunkIndex(DIM)
    for i, t in DOCS.items():
        one_by_one.add([row(i, t)])
    for query in ("retry", "request header", "parse"):
        assert one_by_one.keyword(query, 10) == together.keyword(query, 10)


def test_removed_and_replaced_chunks_change_the_statistics() -> None:
    index = ChunkIndex(DIM)
    index.add(row(i, t) for i, t in DOCS.items())
    index.remove(ids=["3"])
    index.add([row("2", "totally different words")])  # same id: replaces the old text
    left = {i: t for i, t in DOCS.items() if i != "3"} | {"2": "totally different words"}
    assert dict(index.keyword("parse header request", 10)) == pytest.approx(reference_bm25(left, "parse header request"))
    assert "3" not in index and len(index) == 4
    index.remove(paths=["a.py"])
    assert len(index) == 0 and index.keyword("retry", 10) == [] and index.dense(np.ones(DIM), 5) == []


def test_dense_is_exact_cosine_and_skips_chunks_without_vectors() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(300, DIM)).astype(np.float32)
    index = ChunkIndex(DIM)
    index.add(row(str(i), "x", vectors[i].tolist()) for i in range(300))
    index.add([row("pending", "x")])
    query = rng.normal(size=DIM).astype(np.float32)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ (query / np.linalg.norm(query))
    want = [str(i) for i in np.argsort(-cosine)[:10]]
    got = index.dense(query, 10)
    assert [i for i, _ in got] == want
    assert got[0][1] == pytest.approx(float(cosine.max()), rel=1e-5)
    index.set_vectors(["pending"], np.asarray([query]))
    assert index.dense(query, 1)[0] == ("pending", pytest.approx(1.0))


def test_filters_keep_only_the_languages_and_paths_asked_for() -> None:
    index = ChunkIndex(DIM)
    index.add([row("py", "retry", [1.0] * DIM, path="a.py"),
               row("js", "retry", [1.0] * DIM, path="b.js", language="javascript"),
               row("go", "retry", [1.0] * DIM, path="c.go", language="go")])
    assert {i for i, _ in index.keyword("retry", 10, languages={"javascript", "go"})} == {"js", "go"}
    assert {i for i, _ in index.dense(np.ones(DIM), 10, paths={"a.py", "c.go"})} == {"py", "go"}
    assert index.dense(np.ones(DIM), 10, languages={"rust"}) == []
    # Statistics are the folder's, not the filter's: the score does not depend on the filter.
    assert dict(index.keyword("retry", 10, languages={"go"}))["go"] == dict(index.keyword("retry", 10))["go"]


def test_folding_and_rebuilding_give_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many small writes (postings folded into the base again and again) and many removals
    (slots rebuilt) answer exactly as one index built from the surviving chunks at once."""
    monkeypatch.setattr(chunk_index, "_MIN_TAIL_FOLD", 8)
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(40)]
    docs = {str(i): " ".join(rng.choice(words, size=int(rng.integers(1, 12)))) for i in range(400)}
    vecs = {i: rng.normal(size=DIM).tolist() for i in docs}
    grown = ChunkIndex(DIM)
    for i in docs:
        grown.add([row(i, docs[i], vecs[i], path=f"f{int(i) % 50}.py")])
    gone = [str(i) for i in range(0, 400, 3)]
    grown.remove(ids=gone[:70])
    grown.remove(ids=gone[70:], paths=["f7.py"])
    survivors = {i: t for i, t in docs.items() if i not in gone and int(i) % 50 != 7}
    fresh = ChunkIndex(DIM)
    fresh.add(row(i, survivors[i], vecs[i], path=f"f{int(i) % 50}.py") for i in survivors)
    assert len(grown) == len(fresh) == len(survivors)
    for query in ("w1 w2", "w39", "w5 w5 w7 w11"):
        got = grown.keyword(query, 1000)
        assert sorted(i for i, _ in got) == sorted(i for i, _ in fresh.keyword(query, 1000))
        reference = reference_bm25(survivors, query)
        assert dict(got) == pytest.approx(reference)
    probe = rng.normal(size=DIM)
    assert [i for i, _ in grown.dense(probe, 15)] == [i for i, _ in fresh.dense(probe, 15)]


def test_a_saved_index_loads_with_the_same_answers(tmp_path) -> None:
    rng = np.random.default_rng(11)
    index = ChunkIndex(DIM)
    index.add(row(i, t, rng.normal(size=DIM).tolist(), path=f"{i}.py") for i, t in DOCS.items())
    index.add([row("empty", "", None, path="e.py")])
    index.remove(ids=["4"])
    index.save(tmp_path / "snap")
    loaded = ChunkIndex.load(tmp_path / "snap", DIM)
    assert len(loaded) == len(index) == 5 and "4" not in loaded and "empty" in loaded
    probe = rng.normal(size=DIM)
    for query in ("retry request", "parse header"):
        assert dict(loaded.keyword(query, 10)) == pytest.approx(dict(index.keyword(query, 10)))
    assert [i for i, _ in loaded.dense(probe, 10)] == [i for i, _ in index.dense(probe, 10)]
    assert loaded.describe("2") == index.describe("2") == ("2.py", "python", 1, 2, "", 0)
    index.save(tmp_path / "snap")  # saving again replaces it whole
    with pytest.raises(ValueError):
        ChunkIndex.load(tmp_path / "snap", DIM + 1)


def test_chunks_without_vectors_are_pending_until_set() -> None:
    index = ChunkIndex(DIM)
    index.add([row("a", "x"), row("b", "y", [1.0] * DIM), row("c", "z")])
    assert index.pending() == ["a", "c"] and index.pending(1) == ["a"] and index.pending_count() == 2
    index.set_vectors(["c"], np.ones((1, DIM)))
    index.remove(ids=["a"])
    assert index.pending() == [] and index.pending_count() == 0


def test_fold_moves_the_tail_into_the_base_and_keeps_the_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunk_index, "_MIN_TAIL_FOLD", 4)
    index = ChunkIndex(DIM)
    index.add(row(str(i), f"w{i % 7} common") for i in range(8))  # folded: base of 8
    index.add(row(str(i), f"w{i % 7} common") for i in range(8, 14))  # a tail of 6 (< base)
    before = index.keyword("w3 common", 20)
    assert index._base.end == 8
    index.fold()
    assert index._base.end == 14 and index._tail is None
    assert dict(index.keyword("w3 common", 20)) == pytest.approx(dict(before))
