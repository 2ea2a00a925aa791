"""GitHub issue 8 at benchmark size: fuzzing, SIGKILLs and a very large workspace.

    .venv/bin/python -m bench.reliability                      # everything, default sizes
    .venv/bin/python -m bench.reliability --only fuzz --fuzz 2000
    .venv/bin/python -m bench.reliability --only kills --kills 20
    .venv/bin/python -m bench.reliability --only scale --files 200000

- fuzz: the property of tests/test_fuzz.py over N random cases (seed printed), plus the
  malformed frames; every distinct failure is listed, not just the first.
- kills: SIGKILL the server at random points of initial indexing and of incremental
  updates, restart, and require `code-context verify --no-sync` to exit 0 each time.
- scale: a workspace of N small files; while the server indexes it, codeContext/status
  and workspace/symbol latencies are sampled; peak RSS is the server's VmHWM.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import machine, percentile

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

from lsp_raw import RawServer  # noqa: E402


def bench_fuzz(base: Path, examples: int, seed: int) -> dict[str, Any]:
    from test_fuzz import FIXTURE, assert_serving, bad_frames, run_fuzz

    root = base / "fuzz-ws"
    shutil.copytree(FIXTURE, root)
    failures: list[str] = []
    started = time.perf_counter()
    with RawServer([root], cache_dir=base / "fuzz-cache") as server:
        server.wait_idle()
        counts = run_fuzz(server, root, examples, derandomize=False, seed=seed, failures=failures)
        frames = bad_frames(root)
        frame_failures = []
        for name, data, expected in frames:
            server.responses.pop(900, None)
            server.send_raw(data)
            status = server.call("codeContext/status", {}, timeout=15)
            if "result" not in status or not server.alive():
                frame_failures.append(name)
            elif expected is not None and server.wait_response(900, timeout=15)["error"]["code"] != expected:
                frame_failures.append(name)
        assert_serving(server, root)
        alive = server.alive()
    cases = sum(counts.values())
    return {"cases": cases, "seed": seed, "seconds": time.perf_counter() - started, "counts": counts,
            "failures": failures, "frames": len(frames), "frame_failures": frame_failures, "alive": alive}


def bench_kills(base: Path, kills: int, seed: int, files: int) -> dict[str, Any]:
    from test_reliability import run_kills

    started = time.perf_counter()
    initial = kills // 2
    log = run_kills(base / "kills", kills_initial=initial, kills_update=kills - initial, seed=seed, files=files)
    return {"kills": len(log), "seconds": time.perf_counter() - started, "log": log}


def make_many_files(root: Path, count: int) -> None:
    """count small Python files, 500 per folder, each with two functions."""
    for i in range(count):
        folder = root / f"d{i // 500:04d}"
        if i % 500 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"m{i}.py").write_text(
            f"def load_record_{i}(store, key):\n    return store.get('{i}-' + key)\n\n\n"
            f"class Handler{i}:\n    def run(self, request):\n        return load_record_{i}(request.store, request.key)\n")


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def bench_scale(base: Path, files: int, timeout: float) -> dict[str, Any]:
    root = base / "scale-ws"
    started = time.perf_counter()
    make_many_files(root, files)
    created = time.perf_counter() - started
    status_ms: list[float] = []
    symbol_ms: list[float] = []
    progress: list[tuple[float, int, int, int]] = []
    server = RawServer([root], cache_dir=base / "scale-cache")
    begun = time.perf_counter()
    finished = None
    peak_sampled = 0
    try:
        deadline = begun + timeout
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            folder = server.status(timeout=120)[0]
            status_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            server.request("workspace/symbol", {"query": f"load_record_{random.randrange(files)}"}, timeout=120)
            symbol_ms.append((time.perf_counter() - t) * 1000)
            peak_sampled = max(peak_sampled, rss_kib(server.proc.pid, "VmRSS"))
            progress.append((time.perf_counter() - begun, folder["indexedFiles"], folder["chunks"],
                             folder["pendingChunks"]))
            if folder["state"] == "idle" and folder["pendingChunks"] == 0 and folder["indexedFiles"]:
                finished = time.perf_counter() - begun
                break
            time.sleep(0.5)
        hwm = rss_kib(server.proc.pid, "VmHWM")
        last = server.status()[0]
        hits = server.search("load record handler", limit=5)["results"]
    finally:
        server.shutdown()
    return {"files": files, "created_seconds": created, "index_seconds": finished, "timeout": timeout,
            "indexed_files": last["indexedFiles"], "chunks": last["chunks"], "pending": last["pendingChunks"],
            "status_ms": status_ms, "symbol_ms": symbol_ms, "peak_rss_mib": hwm / 1024,
            "sampled_rss_mib": peak_sampled / 1024, "search_hits": len(hits), "progress": progress[:: max(1, len(progress) // 12)]}


def ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (f"median {statistics.median(values):.1f} ms, p95 {percentile(values, 0.95):.1f} ms, "
            f"max {max(values):.1f} ms (n={len(values)})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["fuzz", "kills", "scale"], action="append")
    ap.add_argument("--fuzz", type=int, default=1000, help="generated fuzz cases (default 1000)")
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs, half in initial indexing (default 20)")
    ap.add_argument("--kill-files", type=int, default=200, help="files in each kill workspace")
    ap.add_argument("--files", type=int, default=200_000, help="files in the scale workspace")
    ap.add_argument("--scale-timeout", type=float, default=3600, help="seconds to let the scale index run")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    only = set(args.only or ["fuzz", "kills", "scale"])
    print(f"machine: {machine()}")
    print(f"seed: {args.seed}")
    with tempfile.TemporaryDirectory(prefix="cc-reliability-") as tmp:
        base = Path(tmp)
        os.environ["CODE_CONTEXT_CACHE_DIR"] = str(base / "cache")
        if "fuzz" in only:
            r = bench_fuzz(base, args.fuzz, args.seed)
            print(f"fuzz: {r['cases']} generated requests in {r['seconds']:.0f} s, server alive: {r['alive']}, "
                  f"check failures: {len(r['failures'])}; {r['frames']} malformed frames, "
                  f"failures: {r['frame_failures'] or 'none'}")
            for key, n in sorted(r["counts"].items()):
                print(f"  {key}: {n}")
            for f in sorted(set(x.split(": ", 1)[-1][:160] for x in r["failures"]))[:10]:
                print(f"  failure: {f}")
        if "kills" in only:
            r = bench_kills(base, args.kills, args.seed, args.kill_files)
            print(f"kills: {r['kills']} SIGKILLs ({args.kill_files} files each), every restart verified "
                  f"(`code-context verify --no-sync` exit 0), {r['seconds']:.0f} s")
            for entry in r["log"]:
                print(f"  {entry}")
        if "scale" in only:
            r = bench_scale(base, args.files, args.scale_timeout)
            state = (f"indexed in {r['index_seconds']:.0f} s" if r["index_seconds"] is not None else
                     f"NOT finished within {r['timeout']:.0f} s")
            print(f"scale: {r['files']} files (created in {r['created_seconds']:.0f} s), {state}; "
                  f"{r['indexed_files']} files, {r['chunks']} chunks, {r['pending']} pending at the end")
            print(f"  codeContext/status while indexing: {ms(r['status_ms'])}")
            print(f"  workspace/symbol while indexing: {ms(r['symbol_ms'])}")
            print(f"  server peak RSS (VmHWM): {r['peak_rss_mib']:.0f} MiB (largest sampled VmRSS "
                  f"{r['sampled_rss_mib']:.0f} MiB); search after: {r['search_hits']} hits")
            for t, done, chunks, pending in r["progress"]:
                print(f"    t={t:6.0f}s files={done} chunks={chunks} pending={pending}")


if __name__ == "__main__":
    main()
