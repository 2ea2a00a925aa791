"""store.py alone, on a real Milvus Lite file: rows go in keyword-searchable, vectors follow."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from lsp_server.store import Deletion, Store

DIM = 8


def vec(i: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i % DIM] = 1.0
    return v


def row(store: Store, i: int, path: str, text: str, vector: np.ndarray | None = None) -> dict:
    return store.row(id=f"id{i}", path=path, language="python", start_line=i, end_line=i + 1, symbol=f"f{i}",
                     kind=12, content=text, search_text=text, vector=vector)


def test_rows_are_keyword_searchable_before_their_vectors_and_dense_search_skips_them(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "milvus.db"), "cc_test", DIM)
    try:
        assert store.created
        store.replace(Deletion(), [row(store, 1, "a.py", "parse the header"), row(store, 2, "b.py", "retry the request")])
        store.flush()
        assert store.count() == 2 and store.count_pending() == 2
        assert [h.id for h in store.keyword_search("retry", 5)] == ["id2"]
        assert store.dense_search(vec(1), 5) == []  # no vector yet: not a dense candidate

        rows = store.rows(["id1", "id2"])
        assert store.set_vectors(rows, np.stack([vec(1), vec(2)])) == 2
        store.flush()
        assert store.count_pending() == 0
        top = store.dense_search(vec(2), 1)
        assert [h.id for h in top] == ["id2"] and top[0].path == "b.py" and top[0].start_line == 2
    finally:
        store.close()


def test_replace_deletes_by_id_and_by_path_and_a_deleted_row_is_not_resurrected(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "milvus.db"), "cc_test", DIM)
    try:
        store.replace(Deletion(), [row(store, i, f"f{i % 2}.py", f"text {i}") for i in range(4)])
        stale = store.rows(["id0"])
        store.replace(Deletion(ids=["id0"]), [])
        store.replace(Deletion(paths=["f1.py"]), [row(store, 9, "f1.py", "new text")])
        store.flush()
        assert sorted(i for i, _ in store.iter_ids()) == ["id2", "id9"]
        assert store.set_vectors(stale, np.stack([vec(0)])) == 0  # deleted meanwhile: stays deleted
        assert sorted(i for i, _ in store.iter_ids()) == ["id2", "id9"]
    finally:
        store.close()


def test_a_reopened_store_keeps_its_rows(tmp_path: Path) -> None:
    uri = str(tmp_path / "milvus.db")
    store = Store(uri, "cc_test", DIM)
    store.replace(Deletion(), [row(store, 1, "a.py", "kept across opens", vec(1))])
    store.flush()
    store.close()
    again = Store(uri, "cc_test", DIM)
    try:
        assert not again.created and again.count() == 1
        assert again.with_content(again.keyword_search("kept", 3))[0].content == "kept across opens"
    finally:
        again.close()


def test_a_reopened_local_store_searches_from_its_saved_chunk_index_or_rebuilds_it(tmp_path: Path) -> None:
    """A clean close saves the in-memory index and the next open reads it, not Milvus; a write
    after the last save (a crash before close) makes the next open read every row again, even
    when the number of rows came out the same."""
    uri = str(tmp_path / "milvus.db")
    store = Store(uri, "cc_test", DIM)
    store.replace(Deletion(), [row(store, 1, "a.py", "alpha words", vec(1)), row(store, 2, "b.py", "beta words", vec(2))])
    store.close()  # saves
    saved = store._snapshot()
    assert (saved / "arrays.npz").is_file()

    again = Store(uri, "cc_test", DIM)
    again.iter_rows = None  # type: ignore[assignment,method-assign]  # must not be needed
    assert [h.id for h in again.keyword_search("beta", 3)] == ["id2"]
    assert [h.id for h in again.dense_search(vec(1), 1)] == ["id1"]
    again.replace(Deletion(ids=["id2"]), [row(again, 3, "b.py", "gamma words", vec(3))])  # same count
    assert saved.with_name(saved.name + ".dirty").exists()
    again._client.close()  # the process dies: no checkpoint

    third = Store(uri, "cc_test", DIM)
    try:
        assert [h.id for h in third.keyword_search("gamma", 3)] == ["id3"]
        assert third.keyword_search("beta", 3) == []
        assert [h.id for h in third.dense_search(vec(3), 1)] == ["id3"]
    finally:
        third.close()


def test_a_local_collection_has_no_milvus_search_indexes_and_an_older_one_loses_them(tmp_path: Path) -> None:
    """Milvus Lite would build HNSW graphs and BM25 postings nothing reads: the ChunkIndex answers."""
    uri = str(tmp_path / "milvus.db")
    store = Store(uri, "cc_new", DIM)
    try:
        assert set(store._client.list_indexes("cc_new")) == {"path"}
        store.replace(Deletion(), [row(store, 1, "a.py", "found by words", vec(1))])
        assert [h.id for h in store.keyword_search("words", 3)] == ["id1"]
        # A collection made the way a Milvus server gets it (and local ones were, before).
        store.collection, collection = "cc_old", store.collection
        store._ensure_collection(local=False)
        assert {"dense", "sparse"} <= set(store._client.list_indexes("cc_old"))
        store._client.insert("cc_old", [row(store, 2, "b.py", "older rows", vec(2))])
        store.collection = collection
    finally:
        store.close()
    old = Store(uri, "cc_old", DIM)
    try:
        assert not {"dense", "sparse"} & set(old._client.list_indexes("cc_old"))
        assert [h.id for h in old.keyword_search("older", 3)] == ["id2"]
        assert [h.id for h in old.dense_search(vec(2), 1)] == ["id2"]
    finally:
        old.close()


def test_a_clean_save_answers_searches_while_milvus_lite_is_still_opening(tmp_path: Path, monkeypatch) -> None:
    uri = str(tmp_path / "milvus.db")
    store = Store(uri, "cc_test", DIM)
    store.replace(Deletion(), [row(store, 1, "a.py", "answered before the store opens", vec(1))])
    store.close()

    release = threading.Event()
    connect = Store._connect

    def slow_connect(self: Store, token: str | None, local: bool) -> None:
        assert release.wait(30)
        connect(self, token, local)

    monkeypatch.setattr(Store, "_connect", slow_connect)
    again = Store(uri, "cc_test", DIM)
    try:
        assert again._milvus is None  # still opening
        hits = again.with_content(again.keyword_search("answered", 3))
        assert [(h.id, h.content) for h in hits] == [("id1", "answered before the store opens")]
        assert [h.id for h in again.dense_search(vec(1), 1)] == ["id1"] and again.count_pending() == 0
        release.set()
        again.replace(Deletion(), [row(again, 2, "b.py", "written once it opened", vec(2))])  # waits for it
        assert again._milvus is not None and again.count() == 2
    finally:
        release.set()
        again.close()
