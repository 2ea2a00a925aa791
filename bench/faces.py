"""The faces over one index: a CLI search's wall time, cold and forwarded to a language
server that owns the folder, and MCP search_code beside codeContext/search.

    .venv/bin/python -m bench.faces [--provider local|hash] [--runs N] [--queries N]

Writes bench/results/faces.json and the `faces` block of docs/BENCHMARKS.md. The corpus is
a private copy of a few stdlib packages; everything runs on a fresh cache.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import copy_stdlib, machine, percentile
from bench.lsp_client import LspClient
from bench.report import DOC, RESULTS, replace_block

PACKAGES = ["json", "email", "http", "logging", "urllib", "csv", "argparse.py", "textwrap.py", "shutil.py"]
QUERIES = [
    "parse an email address", "retry the request on failure", "encode a string as JSON", "read rows from a CSV file",
    "rotate log files by size", "split a URL into its parts", "wrap long lines of text", "copy a directory tree",
    "parse command line options", "send an HTTP request", "decode a base64 header", "format a log record",
    "quote special characters in a URL", "escape a string for JSON", "handle cookies in HTTP responses",
    "guess a CSV dialect", "write a multipart message", "remove a directory recursively", "add a help message",
    "parse a date header",
]
PYTHON = str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python")


def _cli(env: dict[str, str], *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    out = subprocess.run([PYTHON if Path(PYTHON).exists() else sys.executable, "-m", "lsp_server.cli", *args],
                         env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    return time.perf_counter() - started, out


def _ms(values: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(values) * 1000, 1), "p95": round(percentile(values, 0.95) * 1000, 1),
            "n": len(values)}


async def _mcp_latency(root: Path, env: dict[str, str], queries: list[str]) -> list[float]:
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=PYTHON if Path(PYTHON).exists() else sys.executable,
                                   args=["-m", "lsp_server.cli", "mcp", str(root)], env=env)
    times = []
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await session.call_tool("search_code", {"query": "warm up"})
        for q in queries:
            started = time.perf_counter()
            result = await session.call_tool("search_code", {"query": q, "limit": 10})
            times.append(time.perf_counter() - started)
            assert not result.is_error, result.content
    return times


def run(provider: str, runs: int, n_queries: int, log: Any = print) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="cc-faces-"))
    root = copy_stdlib(work / "corpus", PACKAGES)
    env = {**os.environ, "CODE_CONTEXT_CACHE_DIR": str(work / "cache"), "CODE_CONTEXT_PROVIDER": provider}
    queries = (QUERIES * (n_queries // len(QUERIES) + 1))[:n_queries]
    seconds, out = _cli(env, "index", str(root))
    assert out.returncode == 0, out.stderr
    log(f"indexed: {out.stdout.strip()}")

    cold = []
    for i in range(runs):
        wall, out = _cli(env, "search", str(root), QUERIES[i % len(QUERIES)], "--json", "--no-sync")
        assert out.returncode == 0, out.stderr
        cold.append(wall)
    log(f"cold CLI search: {_ms(cold)}")

    result: dict[str, Any] = {"machine": machine(), "date": datetime.date.today().isoformat(), "provider": provider,
                              "corpus": {"packages": PACKAGES, "index_seconds": round(seconds, 1)},
                              "cli_cold_ms": _ms(cold)}
    with LspClient(root, {"embedding": {"provider": provider}}, env=env) as client:
        client.initialize()
        status = client.wait_idle()
        result["corpus"]["chunks"] = status["folders"][0]["chunks"]
        client.search("warm up")
        forwarded, same = [], 0
        for i in range(runs):
            q = QUERIES[i % len(QUERIES)]
            wall, out = _cli(env, "search", str(root), q, "--json", "--limit", "5")
            assert out.returncode == 0, out.stderr
            forwarded.append(wall)
            ours = [(json.loads(line)["path"], json.loads(line)["start_line"]) for line in out.stdout.splitlines()]
            theirs = [(Path(r["uri"].removeprefix("file://")).relative_to(root).as_posix(),
                       r["range"]["start"]["line"] + 1) for r in client.search(q, limit=5)["results"]]
            same += ours == theirs
        result["cli_forwarded_ms"] = _ms(forwarded)
        result["cli_forwarded_same_top5"] = f"{same}/{runs}"
        log(f"forwarded CLI search: {_ms(forwarded)}, same top 5 as the server: {same}/{runs}")

        lsp_times = []
        for q in queries:
            started = time.perf_counter()
            client.search(q)
            lsp_times.append(time.perf_counter() - started)
        result["lsp_search_ms"] = _ms(lsp_times)
        result["mcp_search_code_ms"] = _ms(asyncio.run(_mcp_latency(root, env, queries)))
        log(f"codeContext/search: {result['lsp_search_ms']}; MCP search_code (follower): "
            f"{result['mcp_search_code_ms']}")

        with LspClient(root, {"embedding": {"provider": provider}}, env=env) as follower:
            follower.initialize()
            started = time.perf_counter()
            while not follower.search("warm up")["results"]:
                time.sleep(0.05)
            result["follower_first_answer_s"] = round(time.perf_counter() - started, 2)
            result["save_in_follower_found_by_owner_ms"] = _ms(_cross_saves(root, follower, client, runs))
            log(f"second server: first answer after {result['follower_first_answer_s']} s; a save in it is "
                f"searchable in the owner after {result['save_in_follower_found_by_owner_ms']}")
    result["handover_s"] = _handovers(root, provider, env, max(3, runs // 4))
    log(f"kill -9 of the owner to the follower's next answer: {result['handover_s']}")
    return result


def _cross_saves(root: Path, editor: LspClient, other: LspClient, runs: int) -> list[float]:
    """Save a new function in one server's editor; time until the other server finds it."""
    target = root / "cc_bench_saved.py"
    times = []
    for i in range(runs):
        # One word with no identifier parts: a fresh chunk's rare words score low in Milvus Lite's
        # per-segment BM25 until segments merge (see BENCHMARKS), and this measures freshness.
        name = "zebraquartz" + "".join(chr(97 + int(d)) for d in str(i))
        target.write_text(f"def {name}():\n    return {i}\n")
        started = time.perf_counter()
        editor.notify("textDocument/didSave", {"textDocument": {"uri": target.as_uri()}})
        while not any(name in r["content"] for r in other.search(name, mode="keyword", limit=3)["results"]):
            time.sleep(0.005)
        times.append(time.perf_counter() - started)
    target.unlink()
    return times


def _handovers(root: Path, provider: str, env: dict[str, str], rounds: int) -> dict[str, float]:
    """A chain of servers: kill -9 the owner, time until its follower answers a search again."""
    options = {"embedding": {"provider": provider}}
    owner = LspClient(root, options, env=env).start()
    owner.initialize()
    owner.wait_idle()
    times = []
    try:
        for _ in range(rounds):
            follower = LspClient(root, options, env=env).start()
            follower.initialize()
            while follower.status()["folders"][0].get("owner", {}).get("processId") != owner.pid:
                time.sleep(0.05)
            assert owner.proc is not None
            owner.proc.kill()
            started = time.perf_counter()
            while True:
                try:
                    if follower.search("parse an email address", timeout=30)["results"]:
                        break
                except Exception:  # noqa: BLE001 - still handing over
                    time.sleep(0.02)
            times.append(time.perf_counter() - started)
            owner.shutdown()
            owner = follower
    finally:
        owner.shutdown()
    return {"p50": round(statistics.median(times), 2), "max": round(max(times), 2), "n": len(times)}


def block(r: dict[str, Any]) -> str:
    def row(name: str, ms: dict[str, float], note: str = "") -> str:
        return f"| {name} | {ms['p50']:.0f} | {ms['p95']:.0f} | {ms['n']} | {note} |"

    return "\n".join([
        f"Machine: {r['machine']}. Measured {r['date']} with the `{r['provider']}` embedder on "
        f"{r['corpus'].get('chunks', '?')} chunks (stdlib: {', '.join(r['corpus']['packages'])}). "
        "Command: `.venv/bin/python -m bench.faces`.",
        "",
        "| measure | p50 ms | p95 ms | runs | |",
        "|---|---|---|---|---|",
        row("`code-context search --json`, nobody owns the folder (cold: opens the store, loads the model)",
            r["cli_cold_ms"]),
        row("`code-context search --json`, forwarded to a language server that owns the folder",
            r["cli_forwarded_ms"], f"same top 5 as `codeContext/search`: {r['cli_forwarded_same_top5']}"),
        row("`codeContext/search` over stdio (the owner itself)", r["lsp_search_ms"]),
        row("MCP `search_code`, `code-context mcp` following the same owner", r["mcp_search_code_ms"],
            "one more hop: MCP stdio, then the owner's socket"),
        row("a function saved in a second language server, until the owner's search finds it",
            r["save_in_follower_found_by_owner_ms"]),
        "",
        f"A second language server answered its first search {r['follower_first_answer_s']} s after `initialize`. "
        f"After kill -9 of the owner, its follower answered again after {r['handover_s']['p50']} s "
        f"(median; max {r['handover_s']['max']} s over {r['handover_s']['n']} hand-overs).",
    ])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--provider", default="local", choices=["local", "hash"])
    ap.add_argument("--runs", type=int, default=20, help="CLI runs per case")
    ap.add_argument("--queries", type=int, default=100, help="requests per face for the latency rows")
    args = ap.parse_args(argv)
    r = run(args.provider, args.runs, args.queries)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "faces.json").write_text(json.dumps(r, indent=1))
    DOC.write_text(replace_block(DOC.read_text(encoding="utf-8"), "faces", block(r)), encoding="utf-8")
    return r


if __name__ == "__main__":
    main()
