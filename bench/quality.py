"""Retrieval quality: MRR@10, Recall@1 and Recall@10 per mode and language, with an RRF baseline.

The corpora and queries come from bench.corpus (stdlib + express, and rxjs). Each workspace is indexed through the real
language server over stdio (``--backend server``, the default) or the engine in-process
(``--backend engine``); every query is then asked in keyword, semantic and hybrid mode.
The baseline is reciprocal-rank fusion (k=100) of the very keyword and semantic candidate
lists the hybrid mode fuses.

    .venv/bin/python -m bench.quality [--provider local] [--backend server|engine]
        [--cache-dir DIR] [--out bench/results/quality.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from bench import corpus as corpus_mod
from bench.common import machine, percentile
from bench.corpus import Query
from lsp_server import search as search_mod
from lsp_server.store import Hit

MODES = ("keyword", "semantic", "hybrid")
K = 10
RRF_K = 100
RESULTS_DIR = Path(__file__).resolve().parent / "results"

Res = tuple[str, int, int]  # path relative to the workspace, first and last line (1-based, inclusive)


# --- scoring ---------------------------------------------------------------------------------

def is_hit(result: Res, query: Query) -> bool:
    """Same file, and the lines overlap by at least half of the target or half of the result.

    A result more than twice the target's length and over 60 lines hits only by covering
    half of itself with the target, so returning a whole file is not a free hit.
    """
    path, start, end = result
    if path != query.path:
        return False
    overlap = min(end, query.end_line) - max(start, query.start_line) + 1
    if overlap <= 0:
        return False
    target_len = query.end_line - query.start_line + 1
    result_len = end - start + 1
    by_result = overlap * 2 >= result_len
    if result_len > 2 * target_len and result_len > 60:
        return by_result
    return by_result or overlap * 2 >= target_len


def first_hit_rank(results: Sequence[Res], query: Query, k: int = K) -> int | None:
    for rank, r in enumerate(results[:k], 1):
        if is_hit(r, query):
            return rank
    return None


def metrics(ranks: Sequence[int | None]) -> dict[str, float]:
    n = len(ranks)
    if n == 0:
        return {"mrr@10": 0.0, "recall@1": 0.0, "recall@10": 0.0, "n": 0}
    return {
        "mrr@10": sum(1.0 / r for r in ranks if r and r <= K) / n,
        "recall@1": sum(1 for r in ranks if r == 1) / n,
        "recall@10": sum(1 for r in ranks if r and r <= K) / n,
        "n": n,
    }


def rrf(dense: list[Hit], keyword: list[Hit], k: int = 100) -> list[tuple[Hit, float]]:
    """Reciprocal-rank fusion: the baseline hybrid search is measured against (not used by the engine)."""
    scores: dict[str, float] = {}
    by_id: dict[str, Hit] = {}
    for hits in (dense, keyword):
        for rank, h in enumerate(hits):
            scores[h.id] = scores.get(h.id, 0.0) + 1.0 / (k + rank + 1)
            by_id[h.id] = h
    return sorted(((by_id[i], s) for i, s in scores.items()), key=lambda p: p[1], reverse=True)


def rrf_results(keyword: Sequence[Res], semantic: Sequence[Res], k: int = RRF_K) -> list[Res]:
    """The baseline: rrf over the same two candidate lists."""
    def hits(results: Sequence[Res]) -> list[Hit]:
        return [Hit(f"{p}:{s}:{e}", 0.0, p, "", s, e, "", 0, "") for p, s, e in results]
    fused = rrf(hits(semantic), hits(keyword), k=k)
    return [(h.path, h.start_line, h.end_line) for h, _ in fused]


# --- backends --------------------------------------------------------------------------------

class EngineBackend:
    """The engine in-process: index with sync_workspace, ask search.search."""

    name = "engine"

    def __init__(self, root: Path, provider: str) -> None:
        from lsp_server.index import WorkspaceIndex
        from lsp_server.settings import parse

        settings, _ = parse({"embedding": {"provider": provider}})
        self.index = WorkspaceIndex(root, settings)

    def build(self) -> dict[str, Any]:
        from lsp_server.sync import sync_workspace

        started = time.perf_counter()
        stats = sync_workspace(self.index)
        if stats.error:
            raise RuntimeError(stats.error)
        return {"seconds": time.perf_counter() - started, "chunks": self.index.store.count(),
                "embedded": stats.embedded, "cached": stats.cached}

    def search(self, query: str, limit: int, mode: str) -> list[Res]:
        results = search_mod.search(self.index, query, limit=limit, mode=mode)
        return [(r.path, r.start_line, r.end_line) for r in results]

    def close(self) -> None:
        self.index.close()


class ServerBackend:
    """The language server over stdio, as an editor would drive it."""

    name = "server"

    def __init__(self, root: Path, provider: str) -> None:
        from bench.lsp_client import LspClient

        self.root = root.resolve()
        self.client = LspClient(self.root, {"embedding": {"provider": provider}}).start()

    def build(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.client.initialize()
        status = self.client.wait_idle()
        folder = status["folders"][0]
        return {"seconds": time.perf_counter() - started, "chunks": folder["chunks"]}

    def search(self, query: str, limit: int, mode: str) -> list[Res]:
        answer = self.client.search(query, limit=limit, mode=mode)
        out = []
        for r in answer["results"]:
            path = Path(unquote(urlparse(r["uri"]).path))
            try:
                rel = path.relative_to(self.root).as_posix()
            except ValueError:
                rel = path.as_posix()
            out.append((rel, r["range"]["start"]["line"] + 1, r["range"]["end"]["line"]))
        return out

    def close(self) -> None:
        self.client.shutdown()


# --- running ---------------------------------------------------------------------------------

def candidates_for(limit: int) -> int:
    """How many candidates hybrid takes from each retriever for a page of `limit` results."""
    return max(limit * search_mod.OVERSAMPLE, search_mod.MIN_CANDIDATES)


def evaluate(search: Callable[[str, int, str], list[Res]], queries: list[Query],
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every query in every mode, plus the RRF baseline over the same candidate lists.

    keyword and semantic are asked once with the candidate count hybrid uses; their top 10
    is what those modes return at limit 10 (no re-ranking happens after retrieval), and the
    whole lists feed the baseline.
    """
    ranks: dict[str, list[int | None]] = defaultdict(list)
    latency: dict[str, list[float]] = defaultdict(list)
    per_query = []
    c = candidates_for(K)
    for i, q in enumerate(queries):
        lists: dict[str, list[Res]] = {}
        for mode, limit in (("keyword", c), ("semantic", c), ("hybrid", K)):
            started = time.perf_counter()
            lists[mode] = search(q.text, limit, mode)
            latency[mode].append(time.perf_counter() - started)
        lists["rrf"] = rrf_results(lists["keyword"], lists["semantic"])
        row = {"query": q.text, "path": q.path, "lines": [q.start_line, q.end_line], "language": q.language}
        for name in ("keyword", "semantic", "hybrid", "rrf"):
            rank = first_hit_rank(lists[name], q)
            ranks[name].append(rank)
            row[name] = rank
        per_query.append(row)
        if progress and (i + 1) % 200 == 0:
            progress(f"  {i + 1}/{len(queries)} queries")
    by_language: dict[str, dict[str, Any]] = {}
    for lang in sorted({q.language for q in queries}):
        idx = [i for i, q in enumerate(queries) if q.language == lang]
        by_language[lang] = {m: metrics([ranks[m][i] for i in idx]) for m in ranks}
    return {
        "all": {m: metrics(r) for m, r in ranks.items()},
        "by_language": by_language,
        "latency_ms": {m: {"p50": 1000 * statistics.median(v), "p95": 1000 * percentile(v, 0.95)}
                       for m, v in latency.items()},
        "per_query": per_query,
    }


def targets(result: dict[str, Any]) -> dict[str, Any]:
    a = result["all"]
    best_single = max(a["keyword"]["mrr@10"], a["semantic"]["mrr@10"])
    hybrid = a["hybrid"]["mrr@10"]
    return {
        "hybrid_over_best_single": hybrid / best_single if best_single else float("nan"),
        "meets_1_10x": hybrid >= 1.10 * best_single,
        "beats_rrf": hybrid > a["rrf"]["mrr@10"],
    }


def engine_config() -> dict[str, Any]:
    from lsp_server import chunking

    config = {name: getattr(search_mod, name) for name in dir(search_mod)
              if name.isupper() and isinstance(getattr(search_mod, name), int | float)
              and not isinstance(getattr(search_mod, name), bool)}
    config.update(DEFAULT_MAX_CHARS=chunking.DEFAULT_MAX_CHARS, SMALL_DEF_CHARS=chunking.SMALL_DEF_CHARS)
    return config


def run(provider: str = "local", backend: str = "server", cache_dir: Path | None = None,
        work: Path | None = None, packages: list[str] | None = None, javascript: bool = True,
        max_queries: int | None = None, corpora: Sequence[str] = corpus_mod.CORPORA,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every corpus of `corpora` (bench.corpus.CORPORA) indexed and asked both query sets;
    packages and javascript choose the stdlib corpus's parts."""
    tmp = Path(tempfile.mkdtemp(prefix="cc-quality-"))
    try:
        # The embedding cache lives per workspace path: reusing it needs a stable path.
        work = work or (cache_dir / "corpus" if cache_dir else tmp)
        os.environ["CODE_CONTEXT_CACHE_DIR"] = str(cache_dir or (tmp / "cache"))
        out: dict[str, Any] = {}
        for corpus_name in corpora:
            root = work / "workspace" if corpus_name == "stdlib" else work / corpus_name
            if root.exists():
                shutil.rmtree(root)
            corpus = (corpus_mod.build(root, packages, javascript) if corpus_name == "stdlib"
                      else corpus_mod.build_named(corpus_name, root))
            log(f"corpus {corpus_name}: {corpus.source}: {corpus.describe()}")
            out[corpus_name] = run_corpus(corpus, provider, backend, max_queries, log)
        return {
            "machine": machine(),
            "date": datetime.date.today().isoformat(),
            "provider": provider,
            "backend": backend,
            "config": engine_config(),
            "corpora": out,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_corpus(corpus: corpus_mod.Corpus, provider: str, backend: str, max_queries: int | None,
               log: Callable[[str], None]) -> dict[str, Any]:
    """One corpus indexed by the server (or engine), both query sets asked in every mode."""
    cls = ServerBackend if backend == "server" else EngineBackend
    engine = cls(corpus.root, provider)
    try:
        build = engine.build()
        log(f"indexed through the {backend}: {build['chunks']} chunks in {build['seconds']:.1f} s")
        sets = {"doc": corpus.doc_queries, "identifier": corpus.identifier_queries,
                "name": corpus_mod.name_queries(corpus.identifier_queries)}
        results: dict[str, Any] = {}
        for name, queries in sets.items():
            queries = queries[:max_queries] if max_queries else queries
            started = time.perf_counter()
            results[name] = evaluate(engine.search, queries, log)
            results[name]["targets"] = targets(results[name])
            log(f"{name} queries ({len(queries)}) in {time.perf_counter() - started:.0f} s")
            log(format_table(results[name]))
    finally:
        engine.close()
    return {"corpus": {"description": corpus.describe(), "source": corpus.source, "files": corpus.files,
                       "chunks": build["chunks"]},
            "index": build, "sets": results}


def format_table(result: dict[str, Any]) -> str:
    lines = ["| mode | language | MRR@10 | Recall@1 | Recall@10 | queries |", "| --- | --- | --- | --- | --- | --- |"]
    names = {"keyword": "keyword (BM25)", "semantic": "semantic (dense)", "hybrid": "hybrid",
             "rrf": "baseline: RRF k=100"}
    for mode in ("keyword", "semantic", "hybrid", "rrf"):
        groups = [("all", result["all"][mode])]
        groups += [(lang, m[mode]) for lang, m in result["by_language"].items()]
        for lang, m in groups:
            label = f"**{names[mode]}**" if lang == "all" else names[mode]
            lines.append(f"| {label} | {lang} | {m['mrr@10']:.3f} | {m['recall@1']:.3f} | "
                         f"{m['recall@10']:.3f} | {m['n']} |")
    t = result.get("targets")
    if t:
        lines.append("")
        lines.append(f"hybrid / max(keyword, semantic) = {t['hybrid_over_best_single']:.3f} "
                     f"(target >= 1.10: {'met' if t['meets_1_10x'] else 'NOT met'}); "
                     f"hybrid > RRF: {'yes' if t['beats_rrf'] else 'NO'}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--provider", default="local", choices=["local", "hash"])
    ap.add_argument("--backend", default="server", choices=["server", "engine"])
    ap.add_argument("--cache-dir", type=Path, help="reuse an index cache (embedding cache) across runs")
    ap.add_argument("--max-queries", type=int, help="only the first N queries of each set")
    ap.add_argument("--no-js", action="store_true", help="leave out express (no npm)")
    ap.add_argument("--corpora", nargs="+", default=list(corpus_mod.CORPORA), choices=corpus_mod.CORPORA)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "quality.json")
    args = ap.parse_args()
    print(f"machine: {machine()}", flush=True)
    result = run(args.provider, args.backend, args.cache_dir, javascript=not args.no_js,
                 max_queries=args.max_queries, corpora=args.corpora, log=lambda s: print(s, flush=True))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
