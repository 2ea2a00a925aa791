"""What secret redaction costs, next to indexing the same corpus (issue 17: under 5 %).

    .venv/bin/python -m bench.redaction [--provider local|hash] [--corpus DIR] [--repeat 5] [--no-index]

The corpus is the retrieval-quality one (bench/corpus.py: stdlib packages and express). The
redaction of every indexed file's text is timed on its own, best of --repeat runs, exactly as
read_and_chunk calls it; then the folder is indexed in-process (redaction included) with a
warm model and a fresh cache. Also reported: what importing detect-secrets adds to a process
that already has the engine's other imports, and what was redacted (on this corpus every
redaction is a false positive).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine
from bench.indexing import settings_for
from lsp_server import redaction, scanning
from lsp_server.index import WorkspaceIndex
from lsp_server.settings import IndexSettings
from lsp_server.sync import sync_workspace

_IMPORT = """
import time
import lsp_server.embedding, lsp_server.store, lsp_server.chunking, openai
started = time.perf_counter()
import lsp_server.redaction
print(time.perf_counter() - started)
"""


def texts_of(root: Path) -> list[tuple[str, str]]:
    """(path, text) of every file the index reads, decoded as read_and_chunk decodes it."""
    out = []
    for f in scanning.scan(root, IndexSettings()).files:
        data = (root / f.path).read_bytes()
        if not scanning.is_binary(data):
            out.append((f.path, data.decode("utf-8", errors="replace")))
    return out


def time_redaction(texts: list[tuple[str, str]], repeat: int) -> tuple[float, int, list[str]]:
    best = float("inf")
    found: list[str] = []
    for _ in range(repeat):
        started = time.perf_counter()
        results = [(path, redaction.redact(text, path)) for path, text in texts]
        best = min(best, time.perf_counter() - started)
        found = [f"{path}: {r.reason()}" for path, r in results if r.count]
    return best, sum(len(t) for _, t in texts), found


def import_seconds(runs: int = 5) -> float:
    return min(float(subprocess.run([sys.executable, "-c", _IMPORT], capture_output=True, text=True,
                                    check=True).stdout) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--provider", default="local", choices=["local", "hash"])
    parser.add_argument("--corpus", type=Path, help="an already built corpus (default: build one)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-index", action="store_true", help="time the redaction only (any folder of code)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cc-redaction-") as tmp:
        root = args.corpus
        if root is None:
            from bench.corpus import build

            root = Path(tmp) / "corpus"
            print(build(root).describe())
        root = root.resolve()
        texts = texts_of(root)
        seconds, chars, found = time_redaction(texts, args.repeat)
        imported = import_seconds()
        if args.no_index:
            print(machine())
            print(f"{len(texts)} files, {chars / 1e6:.2f} M characters: redaction {seconds:.3f} s "
                  f"(best of {args.repeat}), {seconds / len(texts) * 1e3:.2f} ms per file; "
                  f"import {imported * 1e3:.0f} ms; redacted: {len(found)} files")
            for line in found:
                print(f"  {line}")
            return

        os.environ["CODE_CONTEXT_CACHE_DIR"] = str(Path(tmp) / "cache")
        index = WorkspaceIndex(root, settings_for(args.provider))
        index.embedder.embed_query("warm up")  # model load is start-up, not indexing
        started = time.perf_counter()
        stats = sync_workspace(index)
        indexing = time.perf_counter() - started
        chunks = index.store.count()
        index.close()
        assert stats.error is None, stats.error

    print(machine())
    print(f"corpus: {len(texts)} files, {chars / 1e6:.2f} M characters, {chunks} chunks")
    print(f"redaction of every file: {seconds:.3f} s (best of {args.repeat}); "
          f"{seconds / len(texts) * 1e3:.2f} ms per file, {seconds / chunks * 1e6:.0f} us per chunk")
    print(f"indexing in-process ({args.provider}, warm model, redaction included): {indexing:.1f} s")
    print(f"redaction share of indexing: {100 * seconds / indexing:.2f} %")
    print(f"importing detect-secrets and lsp_server.redaction on top of the engine: {imported * 1e3:.0f} ms")
    print(f"redacted on this corpus: {len(found)} files")
    for line in found:
        print(f"  {line}")


if __name__ == "__main__":
    main()
