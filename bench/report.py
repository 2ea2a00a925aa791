"""Render the measured parts of docs/BENCHMARKS.md from bench/results/*.json.

Only the blocks between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` are replaced; the
prose, the experiments log and the notes around them are written by hand.

    .venv/bin/python -m bench.report [--quality bench/results/quality.json] [--perf bench/results/perf.json]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from bench.indexing import PROBE_PAUSE_S
from bench.quality import format_table

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "BENCHMARKS.md"
RESULTS = Path(__file__).resolve().parent / "results"


def quality_block(q: dict[str, Any]) -> str:
    lines = [
        f"Machine: {q['machine']}.{' Measured ' + q['date'] if 'date' in q else ''} through the {q['backend']} "
        f"(`{q['provider']}` embedder: {'all-MiniLM-L6-v2' if q['provider'] == 'local' else q['provider']}).",
        "",
        f"Engine: {', '.join(f'{k}={v}' for k, v in sorted(q['config'].items()) if k != 'MAX_QUERY_CHARS')}.",
    ]
    titles = {"doc": "Doc-comment queries (first sentence of the removed docstring / JSDoc)",
              "identifier": "Identifier queries (a public function's name split into words)",
              "name": "Name queries (the same functions' names as typed: `get_content_charset`)"}
    for name, part in q["corpora"].items():
        c = part["corpus"]
        lines += ["", f"**Corpus `{name}`**: {c['source']}.", "",
                  f"{c['description']}; {c['chunks']} chunks, indexed in {part['index']['seconds']:.0f} s."]
        for set_name, result in part["sets"].items():
            lines += ["", f"**{name}: {titles.get(set_name, set_name)}**", "", format_table(result)]
            lat = result.get("latency_ms")
            if lat:
                lines += ["", "Request latency during this run, keyword and semantic asked for 30 results (" + ", ".join(
                    f"{m} p50 {v['p50']:.0f} ms / p95 {v['p95']:.0f} ms" for m, v in lat.items()) + ")."]
    return "\n".join(lines)


def _get(d: dict[str, Any], *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "–"
    return format(value, spec)


def perf_block(p: dict[str, Any]) -> str:
    sizes = p["sizes"]
    head = ["| | " + " | ".join(
        f"~{s['target']:,} chunks, {'model' if s['provider'] == 'local' else 'hash'}"
        + (", Milvus server (loopback)" if s.get("store") == "server" else "") for s in sizes) + " |",
        "| --- |" + " --- |" * len(sizes)]

    def row(label: str, fn) -> str:
        return f"| {label} | " + " | ".join(fn(s) for s in sizes) + " |"

    def ms(path: tuple[str, ...], key: str = "p50") -> Any:
        return lambda s: _fmt(_get(s, *path, key), ".0f")

    def p50_p95(*path: str, digits: str = ".0f") -> Any:
        return lambda s: (f"{_fmt(_get(s, *path, 'p50'), digits)} / {_fmt(_get(s, *path, 'p95'), digits)}"
                          if _get(s, *path) else "–")

    rows = [
        row("chunks (files)", lambda s: f"{s['server']['chunks']:,} ({s['server']['files']:,})"),
        row("embedder", lambda s: "all-MiniLM-L6-v2 (CPU)" if s["provider"] == "local" else "hash, 384-d (zero cost)"),
        row("initial index through the server, s", lambda s: _fmt(s["server"]["index_s"], ".1f")),
        row("… chunks/s end to end", lambda s: _fmt(s["server"]["index_chunks_per_s"], ".1f")),
        row("… first vector written after, s", lambda s: _fmt(_get(s, "server", "first_vector_s"), ".1f")),
        row("**first index through the server over the raw model on the same texts in one call**",
            lambda s: (_fmt(_get(s, "server", "overhead_over_raw_pct"), "+.1f") + " %")
            if _get(s, "server", "overhead_over_raw_pct") is not None else "–"),
        row("… in CPU seconds (server process against the raw call)",
            lambda s: (_fmt(_get(s, "server", "cpu_over_raw_pct"), "+.1f") + " %")
            if _get(s, "server", "cpu_over_raw_pct") is not None else "–"),
        row("raw model on the same chunks, chunks/s", lambda s: _fmt(_get(s, "indexing", "raw_chunks_per_s"), ".1f")),
        row("in-process index (warm model), chunks/s", lambda s: _fmt(_get(s, "indexing", "index_chunks_per_s"), ".1f")),
        row("in-process overhead over the raw model (warm model)", lambda s: (_fmt(_get(s, "indexing", "overhead_pct"), ".1f") + " %")
            if _get(s, "indexing", "overhead_pct") is not None else "–"),
        row("no-change re-sync, s (median / p95)", p50_p95("inprocess", "resync_s", digits=".2f")),
        row("didSave → searchable, ms (p50 / p95)", p50_p95("server", "save_to_searchable_ms")),
        row("search keyword over stdio, warm, ms (p50 / p95)", p50_p95("server", "search_settled_ms", "keyword")),
        row("search semantic over stdio, warm, ms (p50 / p95)", p50_p95("server", "search_settled_ms", "semantic")),
        row("**search hybrid over stdio, warm, ms (p50 / p95)**", p50_p95("server", "search_settled_ms", "hybrid")),
        row("… keyword right after indexing, ms (p50 / p95)", p50_p95("server", "search_ms", "keyword")),
        row("… semantic right after indexing, ms (p50 / p95)", p50_p95("server", "search_ms", "semantic")),
        row("… hybrid right after indexing, ms (p50 / p95)", p50_p95("server", "search_ms", "hybrid")),
        row("**search keyword during the first index, ms (p50 / p95)**",
            p50_p95("during_indexing", "search_ms", "keyword")),
        row("**search semantic during the first index, ms (p50 / p95)**",
            p50_p95("during_indexing", "search_ms", "semantic")),
        row("**search hybrid during the first index, ms (p50 / p95)**", p50_p95("during_indexing", "search_ms", "hybrid")),
        row("… that first index, searched all along, s", lambda s: _fmt(_get(s, "during_indexing", "index_s"), ".1f")),
        row("… in-process: query embedding, ms", p50_p95("inprocess", "breakdown_ms", "embed_query", digits=".1f")),
        row("… in-process: dense top-30 (ChunkIndex; server: Milvus), ms",
            p50_p95("inprocess", "breakdown_ms", "dense_search", digits=".1f")),
        row("… in-process: BM25 top-30 (ChunkIndex; server: Milvus), ms",
            p50_p95("inprocess", "breakdown_ms", "keyword_search", digits=".1f")),
        row("… in-process: name and signature signals, ms",  # "symbol_scores" in results from before issue 16
            lambda s: p50_p95("inprocess", "breakdown_ms", "definition_scores" if _get(
                s, "inprocess", "breakdown_ms", "definition_scores") else "symbol_scores", digits=".1f")(s)),
        row("… in-process: fusion + merge, ms", p50_p95("inprocess", "breakdown_ms", "fuse_merge", digits=".2f")),
        row("… in-process: whole hybrid search(), ms", p50_p95("inprocess", "breakdown_ms", "search_hybrid", digits=".1f")),
        row("floor: numpy brute-force cosine top-30, ms", p50_p95("inprocess", "breakdown_ms", "brute_force", digits=".2f")),
        row("server start → first answered search, s (median)",
            lambda s: _fmt(_get(s, "server", "start_to_first_search_s", "p50"), ".2f")),
        row("… to the first complete answer (model loaded), s (median)",
            lambda s: _fmt(_get(s, "server", "start_to_complete_search_s", "p50"), ".2f")),
        row("server RSS peak while indexing, MiB", lambda s: _fmt(s["server"]["rss_peak_indexing_mib"], ".0f")),
        row("server RSS at rest, MiB", lambda s: _fmt(s["server"]["rss_rest_mib"], ".0f")),
    ]
    n = _get(sizes[0], "server", "search_ms", "hybrid", "n")
    when = f" Measured {p['date']}." if p.get("date") else ""
    lines = [f"Machine: {p['machine']}.{when}", "", *head, *rows, "",
             f"Search latencies: {n} requests per mode and size (40 queries x rounds, modes interleaved), "
             "sent one at a time over stdio. didSave: "
             f"{_get(sizes[0], 'server', 'save_to_searchable_ms', 'n')} edits per size. *Right after indexing*: "
             "the first searches after the server reports the folder idle, while the store may still compact "
             "segments (and a Milvus server build its indexes) in the background; *warm*: the same searches again once "
             "the server has used under 5 % of a core for a second. *Over the raw model*: the first index through the "
             "server (from the answer to initialize to the last vector written: model load, files phase, embedding) "
             "against the bare model encoding the same chunk texts in one call, which sorts them by length. "
             "*During the first index*: another first index on a fresh cache, with a search sent over stdio every "
             f"{PROBE_PAUSE_S} s after the last answer, modes in turn, from the answer to initialize until the last "
             "vector is written (answers while the model loads are words only).",
             "", "![scaling](bench-scaling.png)"]
    return "\n".join(lines)


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- bench:{name} -->\n).*?(<!-- /bench:{name} -->)", re.S)
    if not pattern.search(text):
        return text.rstrip() + f"\n\n<!-- bench:{name} -->\n{body}\n<!-- /bench:{name} -->\n"
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text, count=1)


def render(quality: dict[str, Any] | None, perf: dict[str, Any] | None, doc: Path = DOC) -> None:
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    if quality:
        text = replace_block(text, "quality", quality_block(quality))
    if perf:
        text = replace_block(text, "perf", perf_block(perf))
    doc.write_text(text, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quality", type=Path, default=RESULTS / "quality.json")
    ap.add_argument("--perf", type=Path, default=RESULTS / "perf.json")
    ap.add_argument("--doc", type=Path, default=DOC)
    args = ap.parse_args()
    q = json.loads(args.quality.read_text()) if args.quality.exists() else None
    p = json.loads(args.perf.read_text()) if args.perf.exists() else None
    render(q, p, args.doc)
    print(f"updated {args.doc}")


if __name__ == "__main__":
    main()
