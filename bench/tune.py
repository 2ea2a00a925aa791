"""The tuning harness behind the experiments log in docs/BENCHMARKS.md.

Indexes the quality corpus in-process once (the embedding cache in --cache-dir makes
re-indexing after a chunking or embedded-text change cost only the changed chunks), fetches
generous dense and keyword candidate lists per query, then scores fusion variants offline
through the engine's own fusion code. Not part of `make bench`; the published numbers come
from bench.quality on a clean cache.

    .venv/bin/python -m bench.tune --cache-dir /tmp/cc-tune [--provider local] [--reindex]
    .venv/bin/python -m bench.tune --cache-dir /tmp/cc-tune-rxjs --corpus rxjs
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from bench import corpus as corpus_mod
from bench.common import machine
from bench.corpus import Query
from bench.quality import Res, first_hit_rank, metrics
from bench.quality import rrf as quality_rrf
from lsp_server import search as search_mod
from lsp_server.chunking import ChunkSizes
from lsp_server.store import Hit

POOL = 100


def chunk_sizes(variant: str) -> ChunkSizes:
    """The chunker's knobs under test, passed to the engine: max_chars=N, small_def=N."""
    sizes = ChunkSizes()
    for item in filter(None, variant.split(",")):
        key, _, value = item.partition("=")
        if key == "max_chars":
            sizes = attrs.evolve(sizes, max_chars=int(value))
        elif key == "small_def":
            sizes = attrs.evolve(sizes, small_def_chars=int(value))
        else:
            raise SystemExit(f"unknown variant {item}")
    return sizes


def collect(cache_dir: Path, provider: str, sizes: ChunkSizes, corpus_name: str = "stdlib") -> dict[str, Any]:
    from lsp_server.index import WorkspaceIndex
    from lsp_server.settings import parse
    from lsp_server.sync import sync_workspace

    os.environ["CODE_CONTEXT_CACHE_DIR"] = str(cache_dir)
    root = cache_dir / "corpus" / "workspace"
    if root.exists():
        shutil.rmtree(root)
    corpus = corpus_mod.build_named(corpus_name, root)
    settings, _ = parse({"embedding": {"provider": provider}})
    index = WorkspaceIndex(root, settings, chunk_sizes=sizes)
    index.clear()  # the collection and snapshot start over; the embedding cache stays
    started = time.perf_counter()
    stats = sync_workspace(index)
    print(f"sync: {index.store.count()} chunks, embedded {stats.embedded}, cached {stats.cached}, "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    data: dict[str, Any] = {"sets": {}}
    for name, queries in (("doc", corpus.doc_queries), ("identifier", corpus.identifier_queries),
                          ("name", corpus_mod.name_queries(corpus.identifier_queries))):
        rows = []
        for q in queries:
            dense, keyword, vector = search_mod.retrieve(index, q.text, "hybrid", POOL)
            # The signature signal needs the model and the cache: computed here, once per query.
            _, signature = search_mod.definition_scores(index, q.text, vector, [*keyword, *dense])
            rows.append((q, dense, keyword, signature))
        data["sets"][name] = rows
    data["chunks"] = index.store.count()
    index.close()
    return data


def ranked(pairs: list[tuple[Hit, float]]) -> list[Res]:
    """Sorted (hit, score) pairs to the results search() would return."""
    out: list[Res] = []
    for h, _ in pairs:
        if any(p == h.path and s <= h.end_line and h.start_line <= e for p, s, e in out):
            continue
        out.append((h.path, h.start_line, h.end_line))
    return out


Fuser = Callable[[Query, list[Hit], list[Hit], dict[str, float]], list[Res]]


def file_decay(pairs: list[tuple[Hit, float]], decay: float) -> list[tuple[Hit, float]]:
    """Per-file saturation (issue 16's first lever): each further chunk of a file already
    ranked higher has its score multiplied by decay once more, then the list is re-sorted."""
    seen: dict[str, int] = {}
    out = []
    for h, score in pairs:
        out.append((h, score * decay ** seen.get(h.path, 0)))
        seen[h.path] = seen.get(h.path, 0) + 1
    return sorted(out, key=lambda p: p[1], reverse=True)


class Names:
    """Names defined in a hit's lines, from the symbol index the sync wrote (same corpus for
    every variant), so the name signal of search.definition_scores can be replayed offline."""

    def __init__(self, cache_dir: Path) -> None:
        from lsp_server.symbol_index import SymbolIndex

        db = next((cache_dir / "workspaces").glob("workspace-*/state.db"))
        self.index = SymbolIndex(db)
        self._by_path: dict[str, list[tuple[int, str]]] = {}

    def scores(self, query: str, hits: list[Hit],
               contained_weight: float = search_mod.CONTAINED_WEIGHT) -> dict[str, float]:
        words = search_mod.query_words(query)
        out: dict[str, float] = {}
        for h in hits:
            if h.path not in self._by_path:
                self._by_path[h.path] = [(s.range[0] + 1, s.name) for s in self.index.symbols_in(h.path)]
            names = [n for line, n in self._by_path[h.path] if h.start_line <= line <= h.end_line]
            if not names and h.symbol:
                names = [h.symbol.rsplit(".", 1)[-1]]
            best = max((search_mod.name_match(words, n, contained_weight) for n in names), default=0.0)
            if best > 0:
                out[h.id] = best
        return out


def variants(candidates: int, names: Names) -> dict[str, Fuser]:
    c = candidates

    def keyword(q, d, k, g):
        return ranked([(h, h.score) for h in k[:c]])

    def semantic(q, d, k, g):  # the engine's semantic mode (signatures count, issue 16)
        return ranked(search_mod.by_meaning(d[:c], g))

    def engine(q, d, k, g):
        return ranked(search_mod.fuse(d[:c], k[:c], *search_mod.fusion_weights(q.text),
                                      symbol=names.scores(q.text, [*k[:c], *d[:c]]), signature=g))

    def rrf(q, d, k, g):
        return ranked(quality_rrf(d[:c], k[:c], k=100))

    out: dict[str, Fuser] = {"keyword": keyword, "semantic": semantic, "hybrid(engine)": engine, "rrf": rrf}
    for sw in (0.0, 0.5, 0.8, 1.2, 1.5):  # issue 16: the signature signal's weight
        def signed(q, d, k, g, sw=sw):
            return ranked(search_mod.fuse(d[:c], k[:c], *search_mod.fusion_weights(q.text),
                                          symbol=names.scores(q.text, [*k[:c], *d[:c]]), signature=g,
                                          signature_weight=sw))
        out[f"hybrid(engine), signature weight {sw}"] = signed
    for decay in (0.5, 0.7, 0.85, 0.95):
        def decayed(q, d, k, g, decay=decay):
            fused = search_mod.fuse(d[:c], k[:c], symbol=names.scores(q.text, [*k[:c], *d[:c]]))
            return ranked(file_decay(fused, decay))
        out[f"hybrid(engine) + file decay {decay}"] = decayed
    for boost in (1.05, 1.1, 1.2):
        def definitions_first(q, d, k, g, boost=boost):
            fused = search_mod.fuse(d[:c], k[:c], symbol=names.scores(q.text, [*k[:c], *d[:c]]))
            rescored = [(h, score * (boost if h.kind else 1.0)) for h, score in fused]
            return ranked(sorted(rescored, key=lambda p: p[1], reverse=True))
        out[f"hybrid(engine) + definitions x{boost}"] = definitions_first
    def before_16(q, d, k, g):
        sym = names.scores(q.text, [*k[:c], *d[:c]], contained_weight=0.0)
        return ranked(search_mod.fuse(d[:c], k[:c], 0.5, 0.5, symbol=sym, symbol_weight=0.5))

    out["engine before issue 16: 0.5/0.5/0.5, Dice only"] = before_16
    for cw in (0.0, 0.4):  # issue 16: name signal weight x keyword weight x containment
        for sw in (1.0, 1.5, 2.0):
            for kw in (0.1, 0.3, 0.5):
                def named(q, d, k, g, cw=cw, sw=sw, kw=kw):
                    sym = names.scores(q.text, [*k[:c], *d[:c]], contained_weight=cw)
                    return ranked(search_mod.fuse(d[:c], k[:c], 0.5, kw, symbol=sym, symbol_weight=sw))
                out[f"dense=0.5 keyword={kw} symbol={sw} contained={cw}"] = named
    for sw in (0.0, 0.3, 0.5, 0.8):
        for w in (0.4, 0.5, 0.6):
            def f(q, d, k, g, w=w, sw=sw):  # row 8's grid: Dice only
                sym = names.scores(q.text, [*k[:c], *d[:c]], contained_weight=0.0) if sw else None
                return ranked(search_mod.fuse(d[:c], k[:c], w, 1 - w, symbol=sym, symbol_weight=sw))
            out[f"dense={w} keyword={1 - w:.1f} symbol={sw}"] = f
    return out


def evaluate(data: dict[str, Any], fusers: dict[str, Fuser]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for name, fuse in fusers.items():
        table[name] = {}
        for set_name, rows in data["sets"].items():
            ranks = [first_hit_rank(fuse(q, d, k, g), q) for q, d, k, g in rows]
            table[name][set_name] = metrics(ranks)["mrr@10"]
    return table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache-dir", type=Path, required=True, help="one per corpus: Names reads its symbol index")
    ap.add_argument("--corpus", default="stdlib", choices=corpus_mod.CORPORA)
    ap.add_argument("--provider", default="local")
    ap.add_argument("--reindex", action="store_true", help="index again (embedding cache kept)")
    ap.add_argument("--candidates", type=int, default=30)
    ap.add_argument("--label", default="run")
    ap.add_argument("--variant", default="", help="chunker knobs, e.g. max_chars=800,small_def=200")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    pickle_path = args.cache_dir / f"lists-{args.label}.pkl"
    if pickle_path.exists() and not args.reindex:
        data = pickle.loads(pickle_path.read_bytes())
    else:
        data = collect(args.cache_dir, args.provider, chunk_sizes(args.variant), args.corpus)
        pickle_path.write_bytes(pickle.dumps(data))
    print(f"{data['chunks']} chunks; " + ", ".join(f"{k} {len(v)}" for k, v in data["sets"].items()))
    table = evaluate(data, variants(args.candidates, Names(args.cache_dir)))
    for name, row in table.items():
        print(f"{name:40s} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()))


if __name__ == "__main__":
    main()
