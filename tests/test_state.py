"""state.py alone: the file table, the embedding cache and what a damaged state.db becomes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lsp_server.state import EmbeddingCache, FileTable, open_state


def test_binding_a_new_model_starts_the_file_rows_over(tmp_path: Path) -> None:
    table = FileTable(tmp_path / "state.db")
    try:
        assert table.bind_model("local:m:384|store:a") is True  # nothing bound yet
        table.mark_done([("a.py", 10, 1, "h", 2)], {"a.py": ["x", "y"]})
        assert table.bind_model("local:m:384|store:a") is False and table.count() == 1
        assert table.bind_model("hash:h:256|store:a") is True and table.count() == 0
    finally:
        table.close()


def test_the_embedding_cache_is_keyed_by_model_and_text(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "state.db")
    try:
        v = np.arange(4, dtype=np.float32)
        cache.put_many("m1", ["some text"], v[None, :])
        got = cache.get_many("m1", ["some text", "other"])
        assert got[1] is None and np.array_equal(got[0], v)
        assert cache.get_many("m2", ["some text"]) == [None]
    finally:
        cache.close()


def test_a_damaged_state_db_is_started_over_and_said(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a sqlite database" * 100)
    told: list[str] = []
    state = open_state(path, told.append)
    try:
        assert len(told) == 1 and "damaged" in told[0] and str(path) in told[0]
        assert state.files.count() == 0 and len(state.symbols) == 0
    finally:
        state.close()
    told.clear()
    state = open_state(path, told.append)  # healthy now: nothing to say
    state.close()
    assert told == []
