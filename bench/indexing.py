"""Indexing throughput next to the raw model's, on the same chunks in one run; no-change re-sync.

    .venv/bin/python -m bench.indexing [--packages json http urllib] [--resyncs 7]
    .venv/bin/python -m bench.indexing --server [--search-during] [--packages ...]

``measure`` indexes in-process with a warm model. ``--server`` indexes through a fresh
language server over stdio instead, end to end (model load, files phase, embedding), then
times the raw model on the chunk texts the server stored; with ``--search-during`` it sends
searches while the index runs. bench.perf uses both at each size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import MODES, QUERIES, copy_stdlib, machine, percentile, summary
from bench.lsp_client import LspClient, cpu_seconds
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
        cpu = time.process_time()
        raw_s = raw_throughput(index.embedder, texts)
        out.update(raw_s=raw_s, raw_cpu_s=time.process_time() - cpu, raw_chunks=len(texts),
                   raw_chunks_per_s=len(texts) / raw_s,
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


def server_options(provider: str, store_uri: str = "") -> dict[str, Any]:
    embedding: dict[str, Any] = {"provider": provider}
    if provider == "hash":
        embedding["dimensions"] = 384
    return {"embedding": embedding, "store": {"uri": store_uri}}


def ms_summary(values: list[float]) -> dict[str, float]:
    return {"p50": 1000 * statistics.median(values), "p95": 1000 * percentile(values, 0.95), "n": len(values)}


# Pause between searches sent while indexing runs: someone typing queries, not a load test.
PROBE_PAUSE_S = 0.25


class SearchProbe:
    """Searches sent one at a time over stdio on a thread, modes in turn, until stopped."""

    def __init__(self, client: LspClient) -> None:
        self.client = client
        self.latency: dict[str, list[float]] = {m: [] for m in MODES}
        self.partial = 0  # answers marked incomplete (still indexing, or words only while the model loads)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="search-probe", daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            mode = MODES[i % len(MODES)]
            started = time.perf_counter()
            answer = self.client.search(QUERIES[(i // len(MODES)) % len(QUERIES)], 10, mode)
            self.latency[mode].append(time.perf_counter() - started)
            self.partial += bool(answer.get("partial"))
            i += 1
            self._stop.wait(PROBE_PAUSE_S)

    def __enter__(self) -> SearchProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {m: ms_summary(v) for m, v in self.latency.items() if v}
        out["partial"] = self.partial
        return out


def wait_indexed(client: LspClient, on_poll: Callable[[], None] | None = None,
                 poll: float = 0.25) -> dict[str, Any]:
    """Poll status from now until the folder is indexed with every vector written: seconds to
    the first vector written and to the end."""
    started = time.perf_counter()
    first_vector = None
    while True:
        if on_poll is not None:
            on_poll()
        f = client.status()["folders"][0]
        now = time.perf_counter() - started
        if first_vector is None and f["chunks"] > f["pendingChunks"]:
            first_vector = now
        if f["state"] == "idle" and f["pendingChunks"] == 0 and f["chunks"] > 0:
            return {"files": f["files"], "chunks": f["chunks"], "index_s": now,
                    "first_vector_s": first_vector if first_vector is not None else now}
        if f["state"] == "error":
            raise RuntimeError(f"indexing failed: {f.get('lastError')}")
        time.sleep(poll)


def through_server(root: Path, provider: str, cache_dir: Path, search_during: bool = False,
                   raw: bool = True, log=print) -> dict[str, Any]:
    """The first index of root by a fresh language server over stdio, timed from the answer to
    initialize to the last vector written (model load, files phase and embedding); then the raw
    model on the chunk texts the server stored, in one call (issue 14's baseline)."""
    client = LspClient(root, server_options(provider), env={"CODE_CONTEXT_CACHE_DIR": str(cache_dir)}).start()
    try:
        client.initialize()
        cpu = cpu_seconds(client.pid)
        if search_during:
            with SearchProbe(client) as probe:
                out = wait_indexed(client)
            out["search_ms"] = probe.result()
        else:
            out = wait_indexed(client)
        # CPU time as well as wall time: on shared cores, other jobs' load moves the wall time.
        out["index_cpu_s"] = cpu_seconds(client.pid) - cpu
        out["index_since_spawn_s"] = time.perf_counter() - client.started_at
    finally:
        client.shutdown()
    log(f"  through the server: {out['files']} files, {out['chunks']} chunks in {out['index_s']:.1f} s "
        f"({out['index_since_spawn_s']:.1f} s since spawn, {out['index_cpu_s']:.1f} CPU s); "
        f"first vector after {out['first_vector_s']:.1f} s")
    if search_during:
        lat = out["search_ms"]
        log("  searches during the index: " + ", ".join(
            f"{m} p50 {v['p50']:.0f} ms p95 {v['p95']:.0f} ms (n={v['n']})" for m, v in lat.items() if m in MODES)
            + f"; {lat['partial']} marked partial")
    if raw and provider == "local":
        os.environ["CODE_CONTEXT_CACHE_DIR"] = str(cache_dir)
        index = WorkspaceIndex(root, settings_for(provider))
        try:
            texts = chunk_texts(index)
            index.embedder.embed_query("warm up")
            cpu = time.process_time()
            raw_s = raw_throughput(index.embedder, texts)
            raw_cpu_s = time.process_time() - cpu
        finally:
            index.close()
        out.update(raw_s=raw_s, raw_cpu_s=raw_cpu_s, raw_chunks=len(texts),
                   overhead_pct=100 * (out["index_s"] - raw_s) / raw_s,
                   cpu_overhead_pct=100 * (out["index_cpu_s"] - raw_cpu_s) / raw_cpu_s)
        log(f"  raw model on the same {len(texts)} chunk texts in one call: {raw_s:.1f} s ({raw_cpu_s:.1f} CPU s); "
            f"the server took {out['overhead_pct']:+.1f} % more time, {out['cpu_overhead_pct']:+.1f} % more CPU")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packages", nargs="+", default=["json", "http", "urllib", "logging"])
    ap.add_argument("--provider", default="local")
    ap.add_argument("--resyncs", type=int, default=7)
    ap.add_argument("--server", action="store_true", help="index through a fresh language server")
    ap.add_argument("--search-during", action="store_true", help="with --server: search while it indexes")
    ap.add_argument("--no-raw", action="store_true", help="with --server: skip the raw model")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_stdlib(Path(tmp) / "corpus", args.packages)
        print(f"corpus: stdlib {' '.join(args.packages)}")
        if args.server:
            through_server(root, args.provider, Path(tmp) / "cache", args.search_during, not args.no_raw)
        else:
            measure(root, args.provider, Path(tmp) / "cache", args.resyncs)


if __name__ == "__main__":
    main()
