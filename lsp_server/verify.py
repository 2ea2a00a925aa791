"""Compare a folder's index with its files: the check behind `code-context verify`.

After any crash, restart and sync, the store must hold exactly the chunks a fresh index of
the same files would: no duplicates, no orphans of deleted files, nothing missing.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import attrs

from . import scanning
from .sync import chunk_id, read_and_chunk

if TYPE_CHECKING:
    from .index import WorkspaceIndex


@attrs.define
class Differences:
    files: int = 0
    chunks: int = 0  # rows in the store
    missing: list[tuple[str, str]] = attrs.Factory(list)  # (path, chunk id) expected but absent
    extra: list[tuple[str, str]] = attrs.Factory(list)  # in the store but not in the files
    duplicates: list[tuple[str, str]] = attrs.Factory(list)  # ids stored more than once
    symbol_orphans: list[str] = attrs.Factory(list)  # symbol files no longer in the workspace
    # Chunks the in-memory search index (a local store's ChunkIndex) holds differently from the
    # store: absent from one of them, or with a vector in one only.
    search_index: list[tuple[str, str]] = attrs.Factory(list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.duplicates or self.symbol_orphans or self.search_index)


def expected_chunks(index: WorkspaceIndex) -> dict[str, str]:
    """chunk id -> path, as a fresh index of the current files would hold."""
    expected: dict[str, str] = {}
    for f in scanning.scan(index.root, index.settings.index).files:
        parsed, _reason = read_and_chunk(index, f.path, f.language)
        if parsed is None:
            continue
        seen: Counter[str] = Counter()
        for c in parsed.chunks:
            expected[chunk_id(f.path, c.content, seen[c.content])] = f.path
            seen[c.content] += 1
    return expected


def verify(index: WorkspaceIndex) -> Differences:
    expected = expected_chunks(index)
    stored: Counter[str] = Counter()
    paths: dict[str, str] = {}
    embedded: dict[str, bool] = {}
    for row in index.store.iter_rows(["id", "path", "embedded"], batch=16_384):
        stored[row["id"]] += 1
        paths[row["id"]] = row["path"]
        embedded[row["id"]] = bool(row["embedded"])
    diff = Differences(files=len(set(expected.values())), chunks=sum(stored.values()))
    diff.missing = sorted((p, i) for i, p in expected.items() if i not in stored)
    diff.extra = sorted((paths[i], i) for i in stored if i not in expected)
    diff.duplicates = sorted((paths[i], i) for i, n in stored.items() if n > 1)
    live = set(expected.values())
    diff.symbol_orphans = sorted(p for p in index.symbols.files() if p not in live)
    memory = index.store.memory
    if memory is not None:
        searched = memory.entries()
        diff.search_index = sorted({(paths[i], i) for i in stored if searched.get(i, (None, None))[1] != embedded[i]}
                                   | {(p, i) for i, (p, _) in searched.items() if i not in stored})
    return diff
