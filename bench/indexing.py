"""Indexing throughput next to the raw model's, on the same chunks in one run; no-change re-sync.

    .venv/bin/python -m bench.indexing [--packages json http urllib] [--resyncs 7]

``measure`` is also what bench.perf uses for the in-process figures at each size.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import copy_stdlib, machine, percentile, summary
from lsp_server.embedding import Embedder
from lsp_server.index import WorkspaceIndex
from lsp_server.settings import parse
from lsp_server.sync import embed_text, sync_workspace


def settings_for(provider: str, store_uri: str = ""):
    raw: dict[str, Any] = {"embedding": {"provider": provider}, "store": {"uri": store_uri}}
    if provider == "hash":
        # The store then holds vectors of the real model's size.
        raw["embedding"]["dimensions"] = 384
    settings, bad = parse(raw)
    assert not bad, bad
    return settings


def chunk_texts(index: WorkspaceIndex) -> list[str]:
    """What the model reads for every chunk in the index, in path and line order."""
    rows = sorted(index.store.iter_rows(["path", "start_line", "symbol", "content"]),
                  key=lambda r: (r["path"], r["start_line"]))
    return [embed_text(r) for r in rows]


def raw_throughput(embedder: Embedder, texts: list[str]) -> float:
    """Seconds the bare embedder takes for texts in one call, which sentence-transformers sorts
    by length itself: the model's own speed on these texts, the pipeline's target (issue 14)."""
    started = time.perf_counter()
    embedder.embed_documents(texts)
    return time.perf_counter() - started


def measure(root: Path, provider: str, cache_dir: Path, resyncs: int = 7, embedder: Embedder | None = None,
            raw: bool = True, log=print) -> dict[str, Any]:
    """Index root in-process with a warm model and a fresh cache; time the bare model on the
    same chunk texts; time no-change re-syncs."""
    os.environ["CODE_CONTEXT_CACHE_DIR"] = str(cache_dir)
    index = WorkspaceIndex(root, settings_for(provider), embedder=embedder)
    load_started = time.perf_counter()
    index.embedder.embed_query("warm up")  # model load is start-up, not throughput
    out: dict[str, Any] = {"model_load_s": time.perf_counter() - load_started}
    started = time.perf_counter()
    stats = sync_workspace(index)
    elapsed = time.perf_counter() - started
    chunks = index.store.count()
    out.update(files=stats.files, chunks=chunks, index_s=elapsed, index_chunks_per_s=chunks / elapsed,
               embedded=stats.embedded)
    log(f"  in-process initial index: {stats.files} files, {chunks} chunks, {elapsed:.1f} s, "
        f"{chunks / elapsed:.1f} chunks/s end to end (embedded {stats.embedded})")
    if raw:
        texts = chunk_texts(index)
        raw_s = raw_throughput(index.embedder, texts)
        out.update(raw_s=raw_s, raw_chunks=len(texts), raw_chunks_per_s=len(texts) / raw_s,
                   overhead_pct=100 * (elapsed - raw_s) / raw_s)
        log(f"  raw model on the same {len(texts)} chunks: {raw_s:.1f} s, {len(texts) / raw_s:.1f} chunks/s; "
            f"pipeline overhead {out['overhead_pct']:.1f}%")
    times = []
    for _ in range(resyncs):
        started = time.perf_counter()
        again = sync_workspace(index)
        times.append(time.perf_counter() - started)
        assert again.embedded == 0 and again.changed_files == 0, again
    if times:
        out.update(resync_median_s=sorted(times)[len(times) // 2], resync_p95_s=percentile(times, 0.95),
                   resync_n=len(times))
        log(f"  no-change re-sync of {stats.files} files: seconds {summary(times)}")
    index.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packages", nargs="+", default=["json", "http", "urllib", "logging"])
    ap.add_argument("--provider", default="local")
    ap.add_argument("--resyncs", type=int, default=7)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_stdlib(Path(tmp) / "corpus", args.packages)
        print(f"corpus: stdlib {' '.join(args.packages)}")
        measure(root, args.provider, Path(tmp) / "cache", args.resyncs)


if __name__ == "__main__":
    main()
