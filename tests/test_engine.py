"""The engine end to end on a real Milvus Lite store: index, search, edit, delete, restart."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bench.quality import rrf
from lsp_server import chunking, signatures, symbols
from lsp_server import query as query_mod
from lsp_server.embedding import HashEmbedder
from lsp_server.errors import EmbeddingError, InvalidInput, StoreError
from lsp_server.index import WorkspaceIndex
from lsp_server.search import (
    by_meaning,
    definition_scores,
    fuse,
    fusion_weights,
    identifier_shaped,
    merge_overlapping,
    name_match,
    name_parts,
    query_words,
    search,
)
from lsp_server.settings import Settings
from lsp_server.state import EmbeddingCache
from lsp_server.store import Hit
from lsp_server.sync import search_text, sync_paths, sync_workspace

FIXTURE = Path(__file__).parent / "fixtures" / "workspace"


class CountingEmbedder(HashEmbedder):
    """The hash embedder, counting what it is asked to embed: chunk texts (a header line, then
    the code) in ``embedded``, one-line signature texts (signatures.py) in ``signatures``."""

    def __init__(self) -> None:
        super().__init__(256)
        self.embedded: list[str] = []
        self.signatures: list[str] = []
        self.fail: EmbeddingError | None = None

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if self.fail:
            raise self.fail
        self.embedded.extend(t for t in texts if "\n" in t)
        self.signatures.extend(t for t in texts if "\n" not in t)
        return super().embed_documents(texts)


def _function(name: str, body_word: str) -> str:
    lines = [f"def {name}(records, options=None):", f'    """Handle {body_word} for the records."""']
    lines += [f"    step_{i} = [{body_word}_{i}(r) for r in records if r is not None]" for i in range(6)]
    lines.append("    return step_0")
    return "\n".join(lines) + "\n"


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CODE_CONTEXT_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "ws"
    shutil.copytree(FIXTURE, root)
    (root / "src" / "pipeline.py").write_text(
        "\n\n".join(_function(n, w) for n, w in [("load_orders", "fetch"), ("price_orders", "tax"),
                                                  ("ship_orders", "courier")]))
    (root / ".env").write_text("API_TOKEN=sk-canary-never-indexed\n")
    (root / ".gitignore").write_text("generated/\n")
    (root / "generated").mkdir()
    (root / "generated" / "skip.py").write_text("def ignored_by_gitignore(): pass\n")
    return root


def _open(root: Path, embedder: HashEmbedder | None = None) -> WorkspaceIndex:
    return WorkspaceIndex(root, Settings(), embedder=embedder or CountingEmbedder())


def _paths(results) -> list[str]:
    return [r.path for r in results]


def test_index_then_search_finds_the_right_lines(workspace: Path) -> None:
    index = _open(workspace)
    stats = sync_workspace(index)
    assert stats.error is None
    assert stats.files == 8
    assert stats.embedded == stats.chunks > 0
    for mode in ("hybrid", "semantic", "keyword"):
        results = search(index, "retry failed http requests", limit=5, mode=mode)
        top = results[0]
        assert top.path == "src/http_client.py", mode
        # fetch_with_retry is lines 18-29 of the fixture.
        assert top.start_line <= 18 and top.end_line >= 29, mode
        assert top.language == "python"
        assert "def fetch_with_retry" in top.content
    index.close()


def test_secrets_and_ignored_files_are_not_indexed(workspace: Path) -> None:
    index = _open(workspace)
    sync_workspace(index)
    hits = search(index, "API_TOKEN sk canary never indexed", limit=20, mode="keyword")
    assert all(".env" not in r.path for r in hits)
    hits = search(index, "ignored by gitignore", limit=20, mode="keyword")
    assert all(not r.path.startswith("generated/") for r in hits)
    index.close()


@pytest.mark.parametrize("query", ["parse header", "parse_header", "parseHeader", "ParseHeader"])
def test_keyword_search_matches_identifier_parts(workspace: Path, query: str) -> None:
    index = _open(workspace)
    sync_workspace(index)
    results = search(index, query, limit=3, mode="keyword")
    assert results and results[0].path == "src/http_client.py"
    assert "def parse_header" in results[0].content
    index.close()


def test_edit_one_function_embeds_only_that_chunk(workspace: Path) -> None:
    embedder = CountingEmbedder()
    index = _open(workspace, embedder)
    sync_workspace(index)
    pipeline = workspace / "src" / "pipeline.py"
    before = {r.symbol for r in search(index, "orders", limit=20, mode="keyword") if r.path == "src/pipeline.py"}
    assert {"load_orders", "price_orders", "ship_orders"} <= before
    embedder.embedded.clear()
    pipeline.write_text(pipeline.read_text().replace("courier_3", "drone_delivery_3"))
    stats = sync_workspace(index)
    assert stats.changed_files == 1
    assert len(embedder.embedded) == 1 and "drone_delivery_3" in embedder.embedded[0]
    results = search(index, "drone delivery", limit=3, mode="keyword")
    assert results[0].symbol == "ship_orders"
    index.close()


def test_moved_lines_and_branch_switches_embed_nothing(workspace: Path) -> None:
    embedder = CountingEmbedder()
    index = _open(workspace, embedder)
    sync_workspace(index)
    pipeline = workspace / "src" / "pipeline.py"
    original = pipeline.read_text()
    embedder.embedded.clear()
    pipeline.write_text("\n\n\n" + original)  # lines move
    assert sync_workspace(index).embedded == 0
    hit = next(r for r in search(index, "load orders", limit=5, mode="keyword") if r.symbol == "load_orders")
    assert hit.start_line == 4
    pipeline.write_text(original.replace("tax", "duty"))  # "other branch"
    assert sync_workspace(index).embedded == 1
    pipeline.write_text(original)  # and back
    stats = sync_workspace(index)
    assert stats.changed_files == 1 and stats.embedded == 0
    index.close()


def test_deleted_file_disappears(workspace: Path) -> None:
    index = _open(workspace)
    sync_workspace(index)
    assert "web/cart.js" in _paths(search(index, "cart total", limit=5))
    (workspace / "web" / "cart.js").unlink()
    stats = sync_workspace(index)
    assert stats.deleted_files == 1
    assert "web/cart.js" not in _paths(search(index, "cart total", limit=10))
    assert "web/cart.js" not in _paths(search(index, "cart total", limit=10, mode="keyword"))
    index.close()


def _store_ids(index: WorkspaceIndex) -> dict[str, set[str]]:
    by_path: dict[str, set[str]] = {}
    for chunk_id, path in index.store.iter_ids():
        by_path.setdefault(path, set()).add(chunk_id)
    return by_path


def test_snapshot_names_each_files_chunk_ids_through_edits_and_deletes(workspace: Path) -> None:
    """Edits delete a file's old chunks by primary key (no collection scan): the ids the
    snapshot keeps must be exactly what the store holds, or old chunks would survive."""
    index = _open(workspace)
    sync_workspace(index)
    paths = sorted(index.files.all())

    def assert_ids_match() -> None:
        held = _store_ids(index)
        recorded = index.files.ids_of(paths)
        assert {p: set(v or ()) for p, v in recorded.items() if v} == held

    assert_ids_match()
    pipeline = workspace / "src" / "pipeline.py"
    pipeline.write_text(pipeline.read_text().replace("courier_3", "drone_delivery_3"))
    sync_paths(index, ["src/pipeline.py"])
    assert_ids_match()
    assert not [r for r in search(index, "courier 3", limit=20, mode="keyword") if "courier_3" in r.content]
    pipeline.write_text(_function("only_this_one", "parcel"))  # fewer chunks than before
    sync_workspace(index)
    assert_ids_match()
    assert {r.symbol for r in search(index, "orders", limit=20, mode="keyword")
            if r.path == "src/pipeline.py"} == set()
    (workspace / "web" / "cart.js").unlink()
    sync_workspace(index)
    assert "web/cart.js" not in _store_ids(index)
    assert "web/cart.js" not in index.files.ids_of(paths)
    index.close()


def test_index_without_recorded_ids_still_replaces_old_chunks(workspace: Path) -> None:
    """An index written before ids were recorded: its files are deleted by path once."""
    import sqlite3

    index = _open(workspace)
    sync_workspace(index)
    index.close()
    db = sqlite3.connect(index.dir / "state.db")
    db.execute("UPDATE files SET ids = NULL")
    db.commit()
    db.close()
    index = _open(workspace)
    assert set(index.files.ids_of(["src/pipeline.py"]).values()) == {None}
    pipeline = workspace / "src" / "pipeline.py"
    pipeline.write_text(pipeline.read_text().replace("courier_3", "drone_delivery_3"))
    sync_paths(index, ["src/pipeline.py"])
    assert not [r for r in search(index, "courier 3", limit=20, mode="keyword") if "courier_3" in r.content]
    assert set(index.files.ids_of(["src/pipeline.py"])["src/pipeline.py"] or ()) == \
        _store_ids(index)["src/pipeline.py"]
    index.close()


def test_snapshot_from_before_the_ids_column_opens(tmp_path: Path) -> None:
    import sqlite3

    from lsp_server.state import FileTable

    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, hash TEXT,"
               " state TEXT, chunks INTEGER)")
    db.execute("INSERT INTO files VALUES ('a.py', 10, 1, 'h', 'done', 2)")
    db.commit()
    db.close()
    snapshot = FileTable(path)
    assert snapshot.ids_of(["a.py", "b.py"]) == {"a.py": None}
    snapshot.mark_done([("a.py", 11, 2, "h2", 1)], {"a.py": ["x1"]})
    assert snapshot.ids_of(["a.py"]) == {"a.py": ["x1"]}
    snapshot.mark_done([("a.py", 11, 3, "h2", 1)])  # unchanged content keeps its ids
    assert snapshot.ids_of(["a.py"]) == {"a.py": ["x1"]} and snapshot.get("a.py") == (11, 3, "h2", "done")
    snapshot.close()


def test_restart_of_unchanged_workspace_reads_and_embeds_nothing(workspace: Path, monkeypatch) -> None:
    index = _open(workspace)
    sync_workspace(index)
    chunks = index.store.count()
    index.close()

    from lsp_server import sync as sync_mod

    reads: list[str] = []
    original = sync_mod.read_and_chunk
    monkeypatch.setattr(sync_mod, "read_and_chunk", lambda ix, rel, lang: (reads.append(rel), original(ix, rel, lang))[1])
    embedder = CountingEmbedder()
    index = _open(workspace, embedder)
    stats = sync_workspace(index)
    assert stats.embedded == 0 and embedder.embedded == []
    assert reads == [], "files with unchanged size and mtime are not read"
    assert index.store.count() == chunks
    assert search(index, "matrix multiply", limit=1)[0].path == "native/matrix.rs"
    index.close()


def test_single_file_sync_is_searchable_at_once(workspace: Path) -> None:
    index = _open(workspace)
    sync_workspace(index)
    (workspace / "src" / "new_feature.py").write_text("def summarize_quarterly_revenue(ledger):\n    return sum(ledger)\n")
    stats = sync_paths(index, ["src/new_feature.py"])
    assert stats.changed_files == 1 and stats.embedded == 1
    for mode in ("semantic", "keyword"):
        assert search(index, "summarize quarterly revenue", limit=1, mode=mode)[0].path == "src/new_feature.py"
    (workspace / "src" / "new_feature.py").unlink()
    assert sync_paths(index, ["src/new_feature.py"]).deleted_files == 1
    assert "src/new_feature.py" not in _paths(search(index, "summarize quarterly revenue", limit=10))
    index.close()


def test_keyword_search_works_while_vectors_are_pending(workspace: Path) -> None:
    embedder = CountingEmbedder()
    embedder.fail = EmbeddingError("provider down", retryable=True)
    index = _open(workspace, embedder)
    stats = sync_workspace(index)
    assert stats.error == "provider down"
    assert stats.pending == index.store.count() > 0
    assert search(index, "matrix multiply", limit=1, mode="keyword")[0].path == "native/matrix.rs"
    assert search(index, "matrix multiply", limit=1, mode="hybrid")[0].path == "native/matrix.rs"
    with pytest.raises(EmbeddingError):
        search(index, "matrix multiply", limit=5, mode="semantic")
    # The provider comes back: the next sync embeds what was pending, and nothing else.
    embedder.fail = None
    stats = sync_workspace(index)
    assert stats.error is None and stats.pending == 0
    assert stats.embedded == index.store.count()
    assert search(index, "matrix multiply", limit=1, mode="semantic")[0].path == "native/matrix.rs"
    index.close()


def test_filters_by_language_and_glob(workspace: Path) -> None:
    index = _open(workspace)
    sync_workspace(index)
    results = search(index, "user", limit=10, languages=["go"])
    assert results and {r.language for r in results} == {"go"}
    results = search(index, "invoices", limit=10, include=["web/**"])
    assert results and all(r.path.startswith("web/") for r in results)
    results = search(index, "invoices", limit=10, exclude=["web/**"])
    assert all(not r.path.startswith("web/") for r in results)
    assert search(index, "invoices", limit=10, include=["nothing/**"]) == []
    index.close()


@pytest.mark.parametrize("query,limit,mode,field", [
    ("", 10, "hybrid", "query"), ("   ", 10, "hybrid", "query"), ("x" * 1001, 10, "hybrid", "query"),
    ("ok", 0, "hybrid", "limit"), ("ok", 101, "hybrid", "limit"), ("ok", True, "hybrid", "limit"),
    ("ok", 10, "fuzzy", "mode"), (None, 10, "hybrid", "query"),
])
def test_bad_search_input_names_the_field(query, limit, mode, field) -> None:
    with pytest.raises(InvalidInput) as info:
        query_mod.validate(query, limit, mode)
    assert info.value.field == field


def test_clear_forgets_everything(workspace: Path) -> None:
    index = _open(workspace)
    sync_workspace(index)
    index.clear()
    assert index.store.count() == 0
    assert index.files.count() == 0
    assert search(index, "matrix", limit=5, mode="keyword") == []
    assert sync_workspace(index).changed_files == 8
    index.close()


def test_model_change_uses_a_separate_collection(workspace: Path) -> None:
    index = _open(workspace, CountingEmbedder())
    sync_workspace(index)
    first = index.store.collection
    index.close()
    other = HashEmbedder(128)
    index = _open(workspace, other)
    stats = sync_workspace(index)
    assert index.store.collection != first
    assert stats.changed_files == 8, "a new vector space starts over"
    assert index.store.dimension == 128
    index.close()


def _hit(i: str, score: float, path: str = "a.py", lines: tuple[int, int] = (1, 5)) -> Hit:
    return Hit(i, score, path, "python", lines[0], lines[1], "", 0, "")


def test_fusion_rewards_agreement_and_normalises_scales() -> None:
    dense = [_hit("a", 0.9), _hit("b", 0.8), _hit("c", 0.1)]
    keyword = [_hit("b", 40.0), _hit("d", 39.0), _hit("a", 1.0)]
    fused = [h.id for h, _ in fuse(dense, keyword)]
    assert fused[0] == "b", "first in one list and close to first in the other"
    assert set(fused) == {"a", "b", "c", "d"}
    scores = [s for _, s in fuse(dense, keyword)]
    assert scores == sorted(scores, reverse=True) and max(scores) <= 1.0


def test_a_named_definition_outranks_a_chunk_that_only_repeats_the_words() -> None:
    # Both retrievers put the chunk that repeats the query's words first; the definition whose
    # name half-matches a sentence query is close behind in dense, far behind in BM25.
    dense = [_hit("repeats", 0.80), _hit("defines", 0.78), _hit("other", 0.50)]
    keyword = [_hit("repeats", 9.0), _hit("defines", 4.0), _hit("other", 2.0)]
    names = {"defines": 0.5}
    before = [h.id for h, _ in fuse(dense, keyword, 0.5, 0.5, symbol=names, symbol_weight=0.5)]
    assert before[0] == "repeats", "the old weights (0.5 / 0.5 / 0.5) follow the words"
    assert [h.id for h, _ in fuse(dense, keyword, symbol=names)][0] == "defines"


def test_name_match_counts_a_name_the_sentence_holds() -> None:
    words = query_words("Return the parsed metadata for this distribution.")
    held, longer = "parsed_metadata", "return_metadata_for_legacy_egg_info"  # 2 of 2 parts vs 3 of 6
    assert name_match(words, held, contained_weight=0) < name_match(words, longer, contained_weight=0)
    assert name_match(words, held) > name_match(words, longer)
    exact = query_words("get content charset")
    assert name_match(exact, "get_content_charset") == pytest.approx(1.4)  # Dice 1 + 0.4 x 1 x 1


def test_name_match_reads_query_words_written_together() -> None:
    coroutine = query_words("Return True if obj is a coroutine object.")
    assert name_parts("iscoroutine", coroutine) == {"is", "coroutine"}
    assert name_match(coroutine, "iscoroutine") > name_match(coroutine, "_format_coroutine")
    assert name_parts("readlines", query_words("read a line")) == {"readlines"}  # no query word is "lines"
    assert name_parts("close", query_words("close it")) == {"close"}  # a whole word stays whole


def test_hybrid_search_puts_the_definition_named_by_a_sentence_first(workspace: Path) -> None:
    """Through the real store: a helper that says the query's words many times, and the
    definition named by two of them. The name signal decides (the weights before issue 16
    ranked the helper first)."""
    (workspace / "src" / "metadata.py").write_text(
        "def parsed_metadata(dist):\n    text = dist.read_text('METADATA')\n    return email.message_from_string(text)\n")
    (workspace / "src" / "report.py").write_text(
        "def describe(dist):\n"
        "    # Return the metadata for this distribution: the parsed metadata, the distribution.\n"
        "    return f'metadata for this distribution {dist} return the parsed distribution metadata'\n")
    index = _open(workspace)
    sync_workspace(index)
    results = search(index, "Return the parsed metadata for this distribution.", limit=5)
    assert results[0].symbol == "parsed_metadata"
    index.close()


def test_signature_text_is_the_owner_and_the_definition_line_in_words() -> None:
    line = "    def get_content_charset(self, failobj=None):"
    assert signatures.text("get_content_charset", "email.message.Message", line) == \
        "message get content charset failobj none"
    assert signatures.text("toPromise", None, "export function toPromise<T>(source: Observable<T>): Promise<T> {") \
        == "to promise t source observable t promise t"
    assert signatures.text("handle", None) == "handle", "no line: the name's words"
    assert signatures.text("get_type", "Field", "    def get_type(self):") == "field get type", "a keyword inside a name stays"


def test_signatures_of_a_file_are_those_searches_ask_of_its_chunks() -> None:
    """The texts a sync stores and embeds (by_chunk) are the texts a search looks up (of_chunk): a long
    function's continuation chunk takes its definition's name, a chunk of two functions both."""
    source = "class Jar:\n" + _function("add_cookie", "cookie").replace("\n", "\n    ").replace("def ", "    def ", 1)
    source += "\n" + "".join(f"    def helper_{i}(self):\n        return {i}\n" for i in range(3))
    tree = chunking.parse("python", source.encode())
    chunks = chunking.chunk("jar.py", source, "python", tree, chunking.ChunkSizes(max_chars=200, small_def_chars=50))
    defined = symbols.extract(tree, source.encode(), "python")
    assert len(chunks) >= 3
    per_chunk = [signatures.of_chunk(c.content, c.start_line, c.end_line, c.symbol, defined) for c in chunks]
    assert signatures.by_chunk(chunks, defined) == per_chunk
    assert "jar add cookie records options none" in per_chunk[0] + per_chunk[1]
    assert any(ts == ["jar add cookie"] for ts in per_chunk), "a continuation chunk: its definition's name"
    assert any(len(ts) >= 2 for ts in per_chunk), "small methods glued into one chunk: each one's signature"


def test_a_signature_close_to_the_query_decides_between_two_chunks_of_one_file() -> None:
    # Two chunks of one file and one of another: the first chunk is ahead in both lists, the
    # second defines the function whose signature the query describes.
    dense = [_hit("a1", 0.80, "a.py", (1, 20)), _hit("a2", 0.76, "a.py", (21, 40)), _hit("b", 0.60, "b.py")]
    keyword = [_hit("a1", 6.0, "a.py", (1, 20)), _hit("a2", 5.0, "a.py", (21, 40)), _hit("b", 4.0, "b.py")]
    names = {"a1": 0.3, "a2": 0.3}
    assert [h.id for h, _ in fuse(dense, keyword, symbol=names)] == ["a1", "a2", "b"]
    closer = {"a1": 0.35, "a2": 0.62, "b": 0.40}
    assert [h.id for h, _ in fuse(dense, keyword, symbol=names, signature=closer)] == ["a2", "a1", "b"]


def test_semantic_mode_counts_a_definitions_signature() -> None:
    # Two chunks of one file and one of another, in dense order; the second chunk defines the
    # function whose signature is closest to the query, and moves up.
    dense = [_hit("a1", 0.62, "a.py", (1, 20)), _hit("a2", 0.58, "a.py", (21, 40)), _hit("b", 0.50, "b.py")]
    assert [h.id for h, _ in by_meaning(dense, {})] == ["a1", "a2", "b"]
    assert [h.id for h, _ in by_meaning(dense, {"a1": 0.2, "a2": 0.4, "b": 0.3})] == ["a2", "a1", "b"]


def test_keyword_search_weighs_a_definitions_signature_above_its_body(workspace: Path) -> None:
    """BM25 reads a chunk's signatures twice and its path again (sync.search_text): the
    function named for parcels outranks a longer one whose body says "parcel" more often."""
    (workspace / "src" / "audit.py").write_text(
        "def audit(entries):\n    parcel = entries[0]\n    log(parcel, 'checked')\n"
        "    return summary(entries, parcel)\n")
    (workspace / "src" / "scale.py").write_text("def weigh_parcel(item):\n    return item.grams / 1000\n")
    chunk = chunking.Chunk("src/scale.py", "python", 1, 2, "def weigh_parcel(item):", "weigh_parcel", 12)
    text = search_text(chunk, ["weigh parcel item"])
    words = text.split()
    assert words.count("parcel") == 4 and words.count("scale") == 2  # symbol, code, the signature twice; path twice
    index = _open(workspace)
    sync_workspace(index)
    results = search(index, "parcel", limit=2, mode="keyword")
    assert [r.symbol for r in results] == ["weigh_parcel", "audit"]
    index.close()


def test_a_search_embeds_a_bounded_number_of_missing_signatures(tmp_path: Path) -> None:
    cache, embedder = EmbeddingCache(tmp_path / "c.db"), CountingEmbedder()
    texts = [f"jar add cookie {i}" for i in range(5)]
    cache.put_many("m", texts[:1], embedder.embed_documents(texts[:1]))
    embedder.signatures.clear()
    found = signatures.vectors(cache, embedder, "m", [*texts, texts[0]], embed_at_most=2)
    assert list(found) == texts[:3] and embedder.signatures == texts[1:3]
    assert sum(v is not None for v in cache.get_many("m", texts)) == 3, "those embedded are cached"
    embedder.fail = EmbeddingError("down", retryable=True)
    assert list(signatures.vectors(cache, embedder, "m", texts)) == texts[:3], "a failing embedder: cached ones only"


def test_a_sync_embeds_signatures_and_a_search_reads_them_from_the_cache(workspace: Path) -> None:
    embedder = CountingEmbedder()
    index = _open(workspace, embedder)
    sync_workspace(index)
    assert "load orders records options none" in embedder.signatures
    embedder.signatures.clear()
    query = "load the orders from their records"
    results = search(index, query, limit=3)
    assert results[0].symbol == "load_orders"
    assert embedder.signatures == [query], "only the query itself (one line too) was embedded"
    vector = index.embedder.embed_query(query)
    hits = index.store.dense_search(vector, 10)
    names, close = definition_scores(index, query, vector, hits)
    by_symbol = {h.symbol: close[h.id] for h in hits if h.id in close}
    assert by_symbol["load_orders"] > by_symbol["ship_orders"] and names
    assert definition_scores(index, query, None, hits)[1] == {}, "no query vector: no signature signal"
    # An edit embeds the one new signature; a signature missing from the cache (an index from an
    # older version) is embedded by the search that needs it, once.
    pipeline = workspace / "src" / "pipeline.py"
    pipeline.write_text(pipeline.read_text().replace("def ship_orders(records,", "def ship_orders(parcels,"))
    embedder.signatures.clear()
    sync_paths(index, ["src/pipeline.py"])
    assert embedder.signatures == ["ship orders parcels options none"]
    index.cache._db.execute("DELETE FROM embeddings WHERE length(vector) > 0")
    embedder.signatures.clear()
    search(index, query, limit=3)
    asked = len(embedder.signatures)
    search(index, query, limit=3)
    assert asked > 1 and len(embedder.signatures) == asked + 1, "the second time only the query"
    index.close()


@pytest.mark.parametrize("query, shaped", [
    ("get_content_charset", True), ("toPromise", True), ("Message.get_all", True), ("fetch()", True),
    ("HTTPConnection", True), ("close", False), ("get content charset", False),
    ("Return the parsed metadata.", False), ("parse_header(raw)", False),
])
def test_identifier_shaped_queries(query: str, shaped: bool) -> None:
    assert identifier_shaped(query) is shaped


def test_an_identifier_shaped_query_weighs_the_words_it_spells_over_meaning() -> None:
    # The dense list prefers one chunk, BM25 the other; the query's shape decides.
    dense = [_hit("means", 0.9), _hit("spells", 0.7), _hit("other", 0.1)]
    keyword = [_hit("spells", 10.0), _hit("means", 7.0)]
    sentence, identifier = fusion_weights("parse the header"), fusion_weights("parse_header")
    assert [h.id for h, _ in fuse(dense, keyword, *sentence)][0] == "means"
    assert [h.id for h, _ in fuse(dense, keyword, *identifier)][0] == "spells"


def test_rrf_baseline_orders_by_rank_sum() -> None:
    ranked = [h.id for h, _ in rrf([_hit("a", 0.9), _hit("b", 0.5)], [_hit("b", 3.0), _hit("c", 2.0)])]
    assert ranked[0] == "b"


def test_overlapping_results_merge() -> None:
    def hit(path: str, start: int, end: int, score: float) -> tuple[Hit, float]:
        return Hit(f"{path}:{start}", score, path, "python", start, end, "", 0, ""), score

    ranked = [hit("a.py", 1, 20, 0.9), hit("a.py", 10, 30, 0.8), hit("a.py", 31, 40, 0.7), hit("b.py", 1, 20, 0.6)]
    assert [(h.path, h.start_line) for h, _ in merge_overlapping(ranked)] == [("a.py", 1), ("a.py", 31), ("b.py", 1)]
    assert [(h.path, h.start_line) for h, _ in merge_overlapping(ranked, limit=2)] == [("a.py", 1), ("a.py", 31)]


def test_embedding_cache_is_keyed_by_model_and_text(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c.db")
    vectors = np.eye(3, dtype=np.float32)
    cache.put_many("m1", ["a", "b", "c"], vectors)
    got = cache.get_many("m1", ["b", "zzz", "a"])
    assert np.array_equal(got[0], vectors[1]) and got[1] is None and np.array_equal(got[2], vectors[0])
    assert cache.get_many("m2", ["a"]) == [None]
    cache.close()
    reopened = EmbeddingCache(tmp_path / "c.db")
    assert np.array_equal(reopened.get_many("m1", ["c"])[0], vectors[2])
    reopened.close()


@pytest.mark.parametrize("fail_at", ["insert", "mark_done"])
def test_edit_interrupted_between_store_and_snapshot_leaves_nothing_behind(
        workspace: Path, monkeypatch: pytest.MonkeyPatch, fail_at: str) -> None:
    """A crash after the old chunks were deleted (or the new ones inserted) but before the
    snapshot row is done: the next sync must find every chunk by the ids the row names."""
    from lsp_server.verify import verify

    index = _open(workspace)
    sync_workspace(index)
    pipeline = workspace / "src" / "pipeline.py"
    pipeline.write_text(pipeline.read_text().replace("courier_3", "drone_delivery_3"))
    target = (index.store._client, "insert") if fail_at == "insert" else (index.files, "mark_done")
    real = getattr(*target)

    def crash(*args, **kwargs):
        raise RuntimeError("killed here")

    monkeypatch.setattr(*target, crash)
    with pytest.raises((RuntimeError, StoreError), match="killed here"):  # the store wraps its failures
        sync_paths(index, ["src/pipeline.py"])
    monkeypatch.setattr(*target, real)
    assert index.files.get("src/pipeline.py")[3] == "pending"
    pipeline.write_text(pipeline.read_text().replace("drone_delivery_3", "bicycle_3"))  # edited again
    sync_workspace(index)
    assert verify(index).ok
    assert not [r for r in search(index, "courier drone", limit=20, mode="keyword")
                if "courier_3" in r.content or "drone_delivery_3" in r.content]
    assert any("bicycle_3" in r.content for r in search(index, "bicycle", limit=5, mode="keyword"))
    index.close()


class WatchingEmbedder(CountingEmbedder):
    """Counts, and notes how many files were indexed when each batch was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.index: WorkspaceIndex | None = None
        self.files_done_at: list[int] = []

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        assert self.index is not None
        self.files_done_at.append(self.index.state.indexed_files)
        return super().embed_documents(texts)


def _many_files(root: Path, files: int) -> None:
    for i in range(files):
        (root / f"mod_{i}.py").write_text(_function(f"handle_{i}", f"step{i}") + "\n" + _function(f"check_{i}", f"verify{i}"))


def test_vectors_are_computed_while_files_are_still_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The encoder starts on the first files' chunks, not after the last file (issue 14)."""
    import lsp_server.sync as sync_mod

    monkeypatch.setenv("CODE_CONTEXT_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "ws"
    root.mkdir()
    _many_files(root, 4 * sync_mod.FILE_BATCH)
    read = sync_mod.read_and_chunk

    def slow_read(*args, **kwargs):  # a files phase of seconds, as a large folder's is
        time.sleep(0.01)
        return read(*args, **kwargs)

    monkeypatch.setattr(sync_mod, "read_and_chunk", slow_read)
    embedder = WatchingEmbedder()
    index = _open(root, embedder)
    embedder.index = index
    try:
        stats = sync_workspace(index)
        assert stats.error is None and stats.pending == 0 and stats.files == 4 * sync_mod.FILE_BATCH
        assert min(embedder.files_done_at) < stats.files  # the first vectors came before the last file
        assert stats.embedded == stats.chunks == index.store.count() == len(embedder.embedded)
        assert len(set(embedder.embedded)) == len(embedder.embedded)  # no chunk embedded twice
    finally:
        index.close()


def test_chunks_beyond_the_encoders_queue_are_embedded_once_afterwards(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Past FEED_LIMIT queued chunks the rest wait in the store, and embed_pending takes them."""
    import lsp_server.sync as sync_mod

    monkeypatch.setenv("CODE_CONTEXT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(sync_mod, "FEED_LIMIT", 10)
    root = tmp_path / "ws"
    root.mkdir()
    _many_files(root, 2 * sync_mod.FILE_BATCH)
    embedder = CountingEmbedder()
    index = _open(root, embedder)
    try:
        stats = sync_workspace(index)
        assert stats.error is None and stats.pending == 0 == index.store.count_pending()
        assert stats.embedded == stats.chunks == index.store.count() == len(set(embedder.embedded))
        assert len(embedder.embedded) == stats.chunks
    finally:
        index.close()


class PriorityEmbedder(CountingEmbedder):
    """Counts, and notes the niceness of the threads that embed."""

    def __init__(self) -> None:
        super().__init__()
        self.niceness: set[int] = set()

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        self.niceness.add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return super().embed_documents(texts)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="niceness is per thread on Linux only")
def test_a_full_sync_embeds_below_the_priority_of_requests_and_edits(workspace: Path) -> None:
    """The editor stays usable while a first index runs: its encoder yields the cores to searches."""
    from lsp_server.host import SYNC_NICENESS, FolderHost

    embedder = PriorityEmbedder()
    host = FolderHost(_open(workspace, embedder))
    try:
        base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        future = host.start_sync()
        assert future is not None
        stats = future.result()
        assert stats.embedded > 0 and embedder.niceness == {min(19, base + SYNC_NICENESS)}
        edit = host.edit_lane.submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())).result()
        assert edit == base
        results, _ = host.search(query_mod.make("load orders", 5, "hybrid"))
        assert results  # answered on this thread, at normal priority
    finally:
        host.close()
