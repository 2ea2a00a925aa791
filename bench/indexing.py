"""Indexing throughput next to the raw model's, on the same chunks in one run; no-change re-sync.

    .venv/bin/python -m bench.indexing [--packages json http urllib] [--resyncs 7]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench.common import copy_stdlib, machine, summary
from lsp_server.index import WorkspaceIndex
from lsp_server.settings import parse
from lsp_server.sync import embed_text, sync_workspace


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packages", nargs="+", default=["json", "http", "urllib", "logging"])
    ap.add_argument("--provider", default="local")
    ap.add_argument("--resyncs", type=int, default=7)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CODE_CONTEXT_CACHE_DIR"] = str(Path(tmp) / "cache")
        root = copy_stdlib(Path(tmp) / "corpus", args.packages)
        settings, _ = parse({"embedding": {"provider": args.provider}})
        index = WorkspaceIndex(root, settings)
        index.embedder.embed_query("warm up")  # model load is start-up, not throughput
        started = time.perf_counter()
        stats = sync_workspace(index)
        elapsed = time.perf_counter() - started
        chunks = index.store.count()
        print(f"corpus: stdlib {' '.join(args.packages)}: {stats.files} files, {chunks} chunks")
        print(f"initial index: {elapsed:.1f} s, {chunks / elapsed:.1f} chunks/s end to end "
              f"(embedded {stats.embedded})")

        rows = []
        for path in {p for p in index.snapshot.all()}:
            rows.extend(index.store.chunks_of(path))
        texts = [embed_text(r) for r in rows]
        started = time.perf_counter()
        for i in range(0, len(texts), 64):
            index.embedder.embed_documents(texts[i:i + 64])
        raw = time.perf_counter() - started
        print(f"raw model on the same {len(texts)} chunks: {raw:.1f} s, {len(texts) / raw:.1f} chunks/s; "
              f"pipeline overhead {100 * (elapsed - raw) / raw:.1f}%")

        times = []
        for _ in range(args.resyncs):
            started = time.perf_counter()
            again = sync_workspace(index)
            times.append(time.perf_counter() - started)
            assert again.embedded == 0 and again.changed_files == 0
        print(f"no-change re-sync of {stats.files} files: seconds {summary(times)}")
        index.close()


if __name__ == "__main__":
    main()
