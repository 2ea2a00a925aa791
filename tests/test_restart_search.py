"""The first search after a restart answers from the index already on disk (issue: it used to
answer nothing, partial, while the folder's index was still opening)."""

from __future__ import annotations

import shutil
from pathlib import Path

from lsp_raw import RawServer
from test_reliability import FIXTURE


def test_first_search_right_after_initialized_finds_the_answer(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(FIXTURE, root)
    cache = tmp_path / "cache"
    with RawServer([root], cache_dir=cache) as first:
        first.wait_idle()
    # Restarted on the unchanged, indexed folder: the search goes out right after `initialized`.
    with RawServer([root], cache_dir=cache) as server:
        answer = server.search("fetch with retry", limit=5)
        assert answer["results"], answer
        assert answer["results"][0]["uri"].endswith("src/http_client.py")
        symbols = server.request("workspace/symbol", {"query": "fetch_with_retry"})
        assert symbols and symbols[0]["name"] == "fetch_with_retry"
