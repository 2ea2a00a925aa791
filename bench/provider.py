"""Indexing throughput with the OpenAI-compatible provider, against a server with fixed latency.

    .venv/bin/python -m bench.provider [--chunks 2000] [--latency-ms 20] [--concurrency 1 4 8] [--runs 5]

The server is tests/fake_openai_server.py in a child process (so its JSON work does not hold
this process's GIL), answering every request after ``--latency-ms``. Each run indexes a fresh
copy of ~2,000 chunks of real code (bench.common.copy_real_code) through the real engine
(WorkspaceIndex + sync_workspace on Milvus Lite) with a fresh cache directory, so every chunk
really is sent. Reported per concurrency: end-to-end chunks/s of the whole first index, and
the provider alone (``embed_documents`` on the same chunk texts in one call), which shows how
much of the concurrency the engine's embedding loop can use.

The timed part holds /tmp/cc-bench.lock (flock), so it never overlaps another benchmark.
Results: bench/results/provider.json and the `provider` block of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench import report
from bench.common import copy_real_code, machine, percentile
from bench.indexing import chunk_texts
from lsp_server import sync
from lsp_server.index import WorkspaceIndex
from lsp_server.openai_provider import OpenAIEmbedder
from lsp_server.settings import parse
from lsp_server.sync import sync_workspace

TESTS = Path(__file__).resolve().parent.parent / "tests"
RESULTS = Path(__file__).resolve().parent / "results"
LOCK = "/tmp/cc-bench.lock"
DIMENSION = 384  # the local model's size, so the store does the same work as in bench.perf


def _serve(conn: Connection, latency: float, dimension: int) -> None:
    """Child process: run the fake server until told to stop; report its counters on request."""
    sys.path.insert(0, str(TESTS))
    from fake_openai_server import FakeOpenAIServer

    with FakeOpenAIServer(dimension=dimension, latency=latency) as fake:
        conn.send(fake.port)
        while (message := conn.recv()) != "stop":
            if message == "stats":
                conn.send({"requests": len(fake.requests), "max_in_flight": fake.max_in_flight,
                           "inputs": sum(len(r.inputs) for r in fake.requests),
                           "faults": sum(r.fault is not None for r in fake.requests)})
            elif message == "reset":
                fake.reset()
                conn.send(None)


class RemoteFake:
    def __init__(self, latency: float, dimension: int = DIMENSION) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, latency, dimension), daemon=True)
        self._proc.start()
        self.base_url = f"http://127.0.0.1:{self._conn.recv()}/v1"

    def ask(self, message: str) -> Any:
        self._conn.send(message)
        return self._conn.recv()

    def close(self) -> None:
        self._conn.send("stop")
        self._proc.join(10)


def _held_by_ancestor(path: str) -> bool:
    """Whether a parent process (`flock /tmp/cc-bench.lock python -m bench.provider`) holds the
    lock already; taking it again through a new open file would wait for ourselves forever."""
    try:
        inode = os.stat(path).st_ino
        holders = {int(f[4]) for line in Path("/proc/locks").read_text().splitlines()
                   if len(f := line.split()) > 5 and f[1] == "FLOCK" and f[5].rsplit(":", 1)[-1] == str(inode)}
        pid = os.getppid()
        while pid > 1:
            if pid in holders:
                return True
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return False


@contextlib.contextmanager
def bench_lock() -> Iterator[None]:
    if os.path.exists(LOCK) and _held_by_ancestor(LOCK):
        yield
        return
    with open(LOCK, "a") as handle:
        started = time.perf_counter()
        fcntl.flock(handle, fcntl.LOCK_EX)
        waited = time.perf_counter() - started
        if waited > 1:
            print(f"  (waited {waited:.0f} s for {LOCK})", flush=True)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def one_run(root: Path, cache: Path, fake: RemoteFake, concurrency: int) -> dict[str, Any]:
    os.environ["CODE_CONTEXT_CACHE_DIR"] = str(cache)
    settings, bad = parse({"embedding": {"provider": "openai", "baseUrl": fake.base_url, "model": "bench",
                                         "dimensions": DIMENSION, "concurrency": concurrency}})
    assert not bad, bad
    fake.ask("reset")
    index = WorkspaceIndex(root, settings, embedder=OpenAIEmbedder(settings.embedding))
    try:
        started = time.perf_counter()
        stats = sync_workspace(index)
        seconds = time.perf_counter() - started
        assert stats.error is None and stats.pending == 0 and stats.cached == 0, stats
        assert stats.embedded == stats.chunks, stats
        engine = fake.ask("stats")
        assert engine["inputs"] == stats.chunks and engine["faults"] == 0, (engine, stats)
        texts = chunk_texts(index)
        fake.ask("reset")
        started = time.perf_counter()
        vectors = index.embedder.embed_documents(texts)
        raw_seconds = time.perf_counter() - started
        assert vectors.shape == (len(texts), DIMENSION)
        alone = fake.ask("stats")
    finally:
        index.close()
    return {"chunks": stats.chunks, "files": stats.files, "seconds": seconds, "chunks_per_s": stats.chunks / seconds,
            "requests": engine["requests"], "max_in_flight": engine["max_in_flight"],
            "provider_alone_s": raw_seconds, "provider_alone_chunks_per_s": len(texts) / raw_seconds,
            "provider_alone_max_in_flight": alone["max_in_flight"]}


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "p95": percentile(values, 0.95), "min": min(values),
            "max": max(values), "n": len(values)}


def run(chunks: int = 2000, latency_ms: float = 20, concurrencies: tuple[int, ...] = (1, 4, 8), runs: int = 5,
        log=print) -> dict[str, Any]:
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-not-secret")
    batch_size = parse({})[0].embedding.batch_size
    default_concurrency = parse({})[0].embedding.concurrency
    out: dict[str, Any] = {"machine": machine(), "date": datetime.date.today().isoformat(),
                           "latency_ms": latency_ms, "dimension": DIMENSION, "batch_size": batch_size,
                           "default_concurrency": default_concurrency, "engine_embed_batch": sync.EMBED_BATCH,
                           "runs": runs, "concurrency": {}}
    fake = RemoteFake(latency_ms / 1000)
    try:
        with tempfile.TemporaryDirectory(prefix="cc-bench-provider-") as tmp:
            corpus = Path(tmp) / "corpus"
            files, size = copy_real_code(corpus, chunks)
            log(f"corpus: {files} files, {size / 1e6:.1f} MB of real code (target ~{chunks:,} chunks); "
                f"server latency {latency_ms:g} ms, batch size {batch_size}")
            one_run(corpus, Path(tmp) / "warm-up", fake, default_concurrency)  # imports, Milvus Lite start-up
            per: dict[int, list[dict[str, Any]]] = {c: [] for c in concurrencies}
            with bench_lock():
                for r in range(runs):  # concurrencies interleaved, so drift in machine load hits each alike
                    for c in concurrencies:
                        result = one_run(corpus, Path(tmp) / f"cache-{c}-{r}", fake, c)
                        per[c].append(result)
                        log(f"  run {r + 1}/{runs}, concurrency {c}: {result['chunks']} chunks in "
                            f"{result['seconds']:.1f} s = {result['chunks_per_s']:.0f} chunks/s end to end "
                            f"({result['requests']} requests, at most {result['max_in_flight']} in flight); "
                            f"provider alone {result['provider_alone_chunks_per_s']:.0f} chunks/s")
    finally:
        fake.close()
    for c, results in per.items():
        out["concurrency"][str(c)] = {
            "chunks": results[0]["chunks"], "files": results[0]["files"], "requests": results[0]["requests"],
            "max_in_flight": max(r["max_in_flight"] for r in results),
            "chunks_per_s": spread([r["chunks_per_s"] for r in results]),
            "seconds": spread([r["seconds"] for r in results]),
            "provider_alone_chunks_per_s": spread([r["provider_alone_chunks_per_s"] for r in results]),
            "provider_alone_max_in_flight": max(r["provider_alone_max_in_flight"] for r in results),
        }
    return out


def block(p: dict[str, Any]) -> str:
    conc = p["concurrency"]
    first = next(iter(conc.values()))

    def cell(s: dict[str, float]) -> str:
        return f"{s['median']:.0f} ({s['min']:.0f}-{s['max']:.0f})"

    lines = [
        f"Machine: {p['machine']}. Measured {p['date']}.",
        "",
        f"Corpus: {first['chunks']:,} chunks ({first['files']} files) of real code (stdlib first); "
        f"server latency {p['latency_ms']:g} ms per request, {p['dimension']}-d vectors, "
        f"batch size {p['batch_size']}, a fresh cache per run so every chunk is sent. "
        f"{p['runs']} runs per setting, interleaved; median (min-max).",
        "",
        "| concurrency | end to end, chunks/s | requests | most in flight | provider alone, chunks/s | most in flight |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c, s in conc.items():
        label = f"{c} (default)" if int(c) == p["default_concurrency"] else c
        lines.append(f"| {label} | {cell(s['chunks_per_s'])} | {s['requests']} | {s['max_in_flight']} | "
                     f"{cell(s['provider_alone_chunks_per_s'])} | {s['provider_alone_max_in_flight']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=2000)
    ap.add_argument("--latency-ms", type=float, default=20)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-write", action="store_true", help="print only; leave results and docs alone")
    args = ap.parse_args(argv)
    log = lambda s: print(s, flush=True)  # noqa: E731
    log(f"machine: {machine()}")
    result = run(args.chunks, args.latency_ms, tuple(args.concurrency), args.runs, log)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "provider.json").write_text(json.dumps(result, indent=1))
        text = report.DOC.read_text(encoding="utf-8")
        report.DOC.write_text(report.replace_block(text, "provider", block(result)), encoding="utf-8")
        log(f"wrote {RESULTS / 'provider.json'} and the provider block of {report.DOC}")
    return result


if __name__ == "__main__":
    main()
