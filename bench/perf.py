"""Performance at growing sizes, through the real language server over stdio.

Workspaces of real code (the stdlib, then the venv's site-packages) of about 2,000, 20,000
and 100,000 chunks, and the 20,000 again with a `milvus-lite server` on loopback as the store. The bundled model (provider ``local``) embeds the 2,000-chunk workspace;
the larger ones use the zero-cost ``hash`` embedder (384 dimensions, like the model), which
leaves scanning, chunking, the store and search to be measured: the model alone would need
about 20 minutes per 20,000 chunks on this machine.

Per size: initial indexing (server, end to end; for the model, against the raw model on the
same chunk texts in one call), a second first index searched over stdio all along (the model
column by default, ``--during``), peak and resting RSS of the server, search
latency per mode over stdio, didSave-to-searchable latency, server start to first answered
search on the indexed workspace; then in-process: no-change re-sync, where a search's time
goes (query embedding, dense and BM25 search, fusion) next to a brute-force numpy
scan of the same vectors, and, for the model, its raw throughput on the same chunks.

    .venv/bin/python -m bench.perf [--sizes 2000:local 2000:hash 20000:hash 100000:hash 20000:hash:server]
        [--out bench/results/perf.json] [--plot docs/bench-scaling.png]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import MODES, QUERIES, copy_real_code, machine, percentile
from bench.indexing import chunk_texts, measure, ms_summary, server_options, settings_for, through_server, wait_indexed
from bench.lsp_client import LspClient, cpu_seconds, tree_rss_kib, wait_quiet

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DOCS_DIR = Path(__file__).resolve().parent.parent / "docs"
# ~100,000 chunks (hash embedder) took 3-6 minutes to index here; the model column 1-7 minutes.
DEFAULT_SIZES = ["2000:local", "2000:hash", "20000:hash", "100000:hash", "20000:hash:server"]


@contextlib.contextmanager
def loopback_milvus(data_dir: Path) -> Iterator[str]:
    """A `milvus-lite server` on 127.0.0.1, as a Milvus server for `store.uri`."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("milvus-lite")
    proc = subprocess.Popen([str(exe), "server", "--data-dir", str(data_dir), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("milvus-lite server did not start") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


def search_latency(client: LspClient, rounds: int) -> dict[str, dict[str, float]]:
    """Per mode, over stdio; modes interleaved so noise hits them alike."""
    lat: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(rounds):
        for q in QUERIES:
            for mode in MODES:
                t = time.perf_counter()
                client.search(q, 10, mode)
                lat[mode].append(time.perf_counter() - t)
    return {m: ms_summary(v) for m, v in lat.items()}


def server_phase(root: Path, provider: str, cache: Path, edits: int, rounds: int, restarts: int,
                 log: Callable[[str], None], store_uri: str = "") -> dict[str, Any]:
    env = {"CODE_CONTEXT_CACHE_DIR": str(cache)}
    out: dict[str, Any] = {}
    client = LspClient(root, server_options(provider, store_uri), env=env).start()
    try:
        client.initialize()
        peak_sampled = 0

        def sample_rss() -> None:
            nonlocal peak_sampled
            peak_sampled = max(peak_sampled, tree_rss_kib(client.pid)[0])

        cpu = cpu_seconds(client.pid)
        indexed = wait_indexed(client, sample_rss)
        f, elapsed = indexed, indexed["index_s"]
        out.update(indexed, index_since_spawn_s=time.perf_counter() - client.started_at,
                   index_chunks_per_s=f["chunks"] / elapsed, index_cpu_s=cpu_seconds(client.pid) - cpu)
        _, hwm = tree_rss_kib(client.pid)
        out["rss_peak_indexing_mib"] = max(hwm, peak_sampled) / 1024
        log(f"  server: {f['files']} files, {f['chunks']} chunks indexed in {elapsed:.1f} s "
            f"({f['chunks'] / elapsed:.0f} chunks/s); peak RSS {out['rss_peak_indexing_mib']:.0f} MiB")

        # Search latency over stdio, first while the store still works in the background after
        # the bulk insert (what a search right after indexing meets), then settled (warm).
        for q in QUERIES[:3]:
            for mode in MODES:
                client.search(q, 10, mode)
        out["search_ms"] = search_latency(client, rounds)
        out["quiet_wait_s"] = wait_quiet(client.pid)  # after the first searches
        out["search_settled_ms"] = search_latency(client, rounds)
        for key, label in (("search_ms", "right after indexing"), ("search_settled_ms", "settled")):
            log(f"  search over stdio, {label}: " + ", ".join(
                f"{m} p50 {v['p50']:.0f} ms p95 {v['p95']:.0f} ms" for m, v in out[key].items()))
        log(f"  the server went quiet {out['quiet_wait_s']:.1f} s after the first searches")

        out["save_to_searchable_ms"] = save_latency(client, root, edits)
        s = out["save_to_searchable_ms"]
        log(f"  didSave to searchable: p50 {s['p50']:.0f} ms, p95 {s['p95']:.0f} ms (n={s['n']})")
        time.sleep(2)
        rss, _ = tree_rss_kib(client.pid)
        out["rss_rest_mib"] = rss / 1024
        log(f"  RSS at rest {out['rss_rest_mib']:.0f} MiB")
    finally:
        client.shutdown()

    firsts: list[float] = []
    complete: list[float] = []  # until an answer is no longer partial (model loaded, re-sync done)
    for _ in range(restarts):
        client = LspClient(root, server_options(provider, store_uri), env=env).start()
        try:
            client.initialize()
            while True:
                answer = client.search(QUERIES[0], 10, "hybrid")
                if answer["results"]:
                    break
                time.sleep(0.05)
            firsts.append(time.perf_counter() - client.started_at)
            while answer["partial"]:
                time.sleep(0.05)
                answer = client.search(QUERIES[0], 10, "hybrid")
            complete.append(time.perf_counter() - client.started_at)
            client.wait_idle(timeout=600)  # let its start-up re-sync finish before shutting down
        finally:
            client.shutdown()
    out["start_to_first_search_s"] = {"p50": statistics.median(firsts), "max": max(firsts), "n": len(firsts)}
    out["start_to_complete_search_s"] = {"p50": statistics.median(complete), "max": max(complete),
                                         "n": len(complete)}
    log(f"  server start to first answered search: median {statistics.median(firsts):.2f} s, "
        f"max {max(firsts):.2f} s (n={len(firsts)}); to a complete (not partial) answer: median "
        f"{statistics.median(complete):.2f} s")
    return out


def _edit_target(root: Path) -> Path:
    """A mid-sized Python file of the workspace to edit."""
    for path in sorted(root.rglob("*.py")):
        size = path.stat().st_size
        if 4_000 <= size <= 40_000:
            return path
    return next(iter(sorted(root.rglob("*.py"))))


def save_latency(client: LspClient, root: Path, edits: int) -> dict[str, float]:
    """Append a function with a fresh name, send didSave, search until it is found."""
    path = _edit_target(root)
    original = path.read_text(encoding="utf-8")
    uri = path.resolve().as_uri()
    times = []
    try:
        for i in range(edits):
            name = f"ccbench_marker_{secrets.token_hex(4)}_{i}"
            path.write_text(f"{original}\n\ndef {name}(value):\n    return value + {i}\n", encoding="utf-8")
            started = time.perf_counter()
            client.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
            deadline = started + 120
            while time.perf_counter() < deadline:
                answer = client.search(name, 5, "hybrid")
                if any(name in r.get("content", "") for r in answer["results"]):
                    times.append(time.perf_counter() - started)
                    break
            else:
                raise TimeoutError(f"{name} not searchable 120 s after didSave")
    finally:
        path.write_text(original, encoding="utf-8")
        client.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
        time.sleep(1)
    return ms_summary(times)


def inprocess_phase(root: Path, provider: str, cache: Path, resyncs: int, rounds: int,
                    log: Callable[[str], None], store_uri: str = "") -> dict[str, Any]:
    """Where a search's time goes, against brute force; no-change re-sync. The server is stopped."""
    from lsp_server import search as search_mod
    from lsp_server import tokens
    from lsp_server.embedding import model_key
    from lsp_server.index import WorkspaceIndex
    from lsp_server.sync import sync_workspace

    os.environ["CODE_CONTEXT_CACHE_DIR"] = str(cache)
    index = WorkspaceIndex(root, settings_for(provider, store_uri))
    out: dict[str, Any] = {}
    try:
        times = []
        for _ in range(resyncs):
            t = time.perf_counter()
            stats = sync_workspace(index)
            times.append(time.perf_counter() - t)
        out["resync_s"] = {"p50": statistics.median(times), "p95": percentile(times, 0.95), "n": len(times),
                           "changed_files": stats.changed_files}
        log(f"  no-change re-sync ({stats.files} files): median {statistics.median(times):.2f} s, "
            f"p95 {percentile(times, 0.95):.2f} s")

        texts = chunk_texts(index)
        vectors = index.cache.get_many(model_key(index.embedder), texts)
        matrix = np.stack([v for v in vectors if v is not None]).astype(np.float32)
        c = max(10 * search_mod.OVERSAMPLE, search_mod.MIN_CANDIDATES)
        parts: dict[str, list[float]] = {k: [] for k in (
            "embed_query", "dense_search", "keyword_search", "definition_scores", "fuse_merge", "brute_force",
            "search_keyword", "search_semantic", "search_hybrid")}
        index.embedder.embed_query("warm up")
        for _ in range(rounds):
            for q in QUERIES:
                t = time.perf_counter()
                v = index.embedder.embed_query(q)
                parts["embed_query"].append(time.perf_counter() - t)
                t = time.perf_counter()
                dense = index.store.dense_search(v, c)
                parts["dense_search"].append(time.perf_counter() - t)
                t = time.perf_counter()
                keyword = index.store.keyword_search(" ".join(tokens.query_terms(q)), c)
                parts["keyword_search"].append(time.perf_counter() - t)
                t = time.perf_counter()
                names, signature = search_mod.definition_scores(index, q, v, [*keyword, *dense])
                parts["definition_scores"].append(time.perf_counter() - t)
                t = time.perf_counter()
                fused = search_mod.fuse(dense, keyword, symbol=names, signature=signature)
                search_mod.shown(index, fused, 10)
                parts["fuse_merge"].append(time.perf_counter() - t)
                t = time.perf_counter()
                scores = matrix @ v
                top = np.argpartition(-scores, min(c, len(scores) - 1))[:c]
                top[np.argsort(-scores[top])]
                parts["brute_force"].append(time.perf_counter() - t)
                for mode in MODES:
                    t = time.perf_counter()
                    search_mod.search(index, q, 10, mode)
                    parts[f"search_{mode}"].append(time.perf_counter() - t)
        out["breakdown_ms"] = {k: ms_summary(v) for k, v in parts.items()}
        out["vectors"] = int(matrix.shape[0])
        b = out["breakdown_ms"]
        log("  in-process p50/p95 ms: " + ", ".join(f"{k} {v['p50']:.1f}/{v['p95']:.1f}" for k, v in b.items()))
    finally:
        index.close()
    return out


def run_size(target: int, provider: str, work: Path, args: argparse.Namespace,
             log: Callable[[str], None], store: str = "") -> dict[str, Any]:
    """One column of the table; ``store`` "server" puts the chunks in a loopback Milvus server."""
    if store == "server":
        with loopback_milvus(work / f"milvus-{target}") as uri:
            return _run_size(target, provider, work, args, log, uri)
    return _run_size(target, provider, work, args, log, "")


def _run_size(target: int, provider: str, work: Path, args: argparse.Namespace,
              log: Callable[[str], None], store_uri: str) -> dict[str, Any]:
    root = work / f"ws-{target}"
    if not root.exists():
        files, size = copy_real_code(root, target)
        log(f"workspace ~{target} chunks: {files} files, {size / 1e6:.1f} MB of real code at {root}")
    cache = work / f"cache-{target}-{provider}"
    shutil.rmtree(cache, ignore_errors=True)
    result: dict[str, Any] = {"target": target, "provider": provider, "store": "server" if store_uri else "lite"}
    result["server"] = server_phase(root, provider, cache, args.edits, args.rounds, args.restarts, log, store_uri)
    result["inprocess"] = inprocess_phase(root, provider, cache, args.resyncs, 1, log, store_uri)
    if provider == "local" and not args.no_raw:
        # The model's own throughput on the same chunks, next to the pipeline's, in-process with
        # a warm model and a fresh cache. Its raw time is also the server's baseline (issue 14):
        # the same root and settings give the server the same chunk texts.
        fresh = work / f"cache-{target}-{provider}-inprocess"
        shutil.rmtree(fresh, ignore_errors=True)
        result["indexing"] = measure(root, provider, fresh, resyncs=0, log=log)
        shutil.rmtree(fresh, ignore_errors=True)
        raw, server = result["indexing"], result["server"]
        server["overhead_over_raw_pct"] = 100 * (server["index_s"] - raw["raw_s"]) / raw["raw_s"]
        server["cpu_over_raw_pct"] = 100 * (server["index_cpu_s"] - raw["raw_cpu_s"]) / raw["raw_cpu_s"]
        log(f"  first index through the server {server['index_s']:.1f} s against the raw model's {raw['raw_s']:.1f} s "
            f"on the same texts: {server['overhead_over_raw_pct']:+.1f} % (CPU {server['cpu_over_raw_pct']:+.1f} %)")
    if provider in args.during:
        # Another first index on a fresh cache, searched all along: what an editor meets meanwhile.
        fresh = work / f"cache-{target}-{provider}-during"
        shutil.rmtree(fresh, ignore_errors=True)
        result["during_indexing"] = through_server(root, provider, fresh, search_during=True, raw=False, log=log)
        shutil.rmtree(fresh, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    return result


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    by_provider: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_provider.setdefault(r["provider"], []).append(r)
    for provider, rows in by_provider.items():
        rows.sort(key=lambda r: r["server"]["chunks"])
        x = [r["server"]["chunks"] for r in rows]
        label = "bundled model" if provider == "local" else "zero-cost hash embedder"
        marker = "s" if provider == "local" else "o"
        axes[0, 0].plot(x, [r["server"]["index_chunks_per_s"] for r in rows], marker=marker, label=label)
        warm = [r["server"]["search_settled_ms"] for r in rows]
        for mode, style in zip(MODES, ("--", ":", "-")):
            axes[0, 1].plot(x, [w[mode]["p95"] for w in warm], style, marker=marker, label=f"{mode} p95, warm ({label})")
        axes[1, 0].plot(x, [r["server"]["rss_peak_indexing_mib"] for r in rows], "-", marker=marker,
                        label=f"peak, indexing ({label})")
        axes[1, 0].plot(x, [r["server"]["rss_rest_mib"] for r in rows], "--", marker=marker,
                        label=f"at rest ({label})")
        axes[1, 1].plot(x, [r["server"]["save_to_searchable_ms"]["p95"] for r in rows], "-", marker=marker,
                        label=f"didSave→searchable p95 ({label})")
        axes[1, 1].plot(x, [1000 * r["server"]["start_to_first_search_s"]["p50"] for r in rows], "--",
                        marker=marker, label=f"start→first search ({label})")
    axes[0, 1].axhline(150, color="grey", lw=0.8, ls="-.", label="target p95 at 20k: 150 ms")
    axes[1, 1].axhline(5000, color="grey", lw=0.8, ls="-.", label="start-up target: 5 s")
    titles = [("initial indexing, chunks/s (server, end to end)", "chunks/s"),
              ("search latency over stdio, p95", "ms"),
              ("server RSS", "MiB"), ("freshness and start-up", "ms")]
    for ax, (title, unit) in zip(axes.flat, titles):
        ax.set_xscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("chunks in the workspace")
        ax.set_ylabel(unit)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0, 0].set_yscale("log")
    fig.suptitle(f"Code Context scaling — {machine()}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES,
                    help="CHUNKS:PROVIDER[:server], e.g. 20000:hash, or 20000:hash:server for a loopback Milvus server")
    ap.add_argument("--edits", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2, help="passes over the query list per mode")
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--resyncs", type=int, default=5)
    ap.add_argument("--no-raw", action="store_true", help="skip the raw-model comparison")
    ap.add_argument("--during", nargs="*", default=["local"],
                    help="providers whose first index is run again while searches are sent")
    ap.add_argument("--work", type=Path, help="keep workspaces here (default: a temporary directory)")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "perf.json")
    ap.add_argument("--plot", type=Path, default=DOCS_DIR / "bench-scaling.png")
    args = ap.parse_args(argv)
    log = lambda s: print(s, flush=True)  # noqa: E731
    log(f"machine: {machine()}")
    work = args.work or Path(tempfile.mkdtemp(prefix="cc-perf-"))
    results: list[dict[str, Any]] = []
    report = {"machine": machine(), "date": datetime.date.today().isoformat(), "sizes": results}
    try:
        for spec in args.sizes:
            target, provider, store = (spec.split(":") + ["", ""])[:3]
            log(f"== ~{target} chunks, provider {provider or 'hash'}, store {store or 'lite'}")
            started = time.perf_counter()
            results.append(run_size(int(target), provider or "hash", work, args, log, store))
            log(f"   ({time.perf_counter() - started:.0f} s)")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=1))  # after each size: a stopped run keeps them
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    plot(results, args.plot)
    log(f"wrote {args.out} and {args.plot}")
    return report


if __name__ == "__main__":
    main()
