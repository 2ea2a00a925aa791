"""workspace/symbol at stdlib size: build time, query latency and ranking quality (issue 4).

Corpus: the standard library of the Python running the benchmark, in place (what the
scanner takes: site-packages and the like are skipped, test suites are kept). The index
lives in a temporary cache directory; nothing in the corpus is written.

- Symbol build, in-process, --runs times: read + tree-sitter parse, symbols.extract, and
  inserting every file into a fresh SymbolIndex (SQLite included), each timed on its own.
- Full index, in-process, once: sync_workspace with the zero-cost hash embedder (chunks,
  BM25 keyword index, store, symbols), the index the server-side queries then run on.
- Queries: 200, drawn with a fixed seed from the corpus's own symbols (exact names,
  prefixes, word-start abbreviations, `Container.member`); --runs passes of
  SymbolIndex.search(query, 200) in-process, then --runs passes of `workspace/symbol` over
  stdio to a real `python -m lsp_server` that built its own index from scratch (its build
  time, initialize to idle, is reported too).
- universal-ctags on the same Python files, for the symbol count.

Run it alone on the machine: other benchmarks hold the same lock.

    flock /tmp/cc-bench.lock .venv/bin/python -m bench.symbols [--runs 5] [--out bench/results/symbols.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
from lsprotocol import types as lsp

from bench.common import machine, percentile, stdlib_dir
from bench.indexing import settings_for
from bench.lsp_client import LspClient
from lsp_server import chunking, scanning, symbols
from lsp_server.settings import IndexSettings
from lsp_server.symbol_index import MAX_RESULTS, SymbolIndex
from lsp_server.symbol_match import segments
from lsp_server.symbols import Symbol

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SEED = 4  # the number: any fixed value makes the query set reproducible
# How the 200 queries divide between the kinds.
MIX = {"exact": 50, "prefix": 40, "initials": 40, "word_starts": 40, "member": 30}
TOP = 5  # abbreviations, prefixes and members count as found within this rank
TARGET_P95_MS = {"server": 30.0, "stdio": 60.0}
TARGET_EXACT_RANK1 = 0.95
TARGET_ABBREV_TOP5 = 0.80
_TEST_DIRS = frozenset({"test", "tests", "idle_test"})

Log = Callable[[str], None]
Result = tuple[str, str, str | None]  # path, name, container: what a query's answer is judged on


@attrs.frozen
class Query:
    kind: str  # exact | prefix | initials | word_starts | member
    text: str
    name: str  # the intended symbol: this name ...
    path: str  # ... in this file ...
    container: str | None = None  # ... and, for member queries, a container ending in this part


def _ms(values: Sequence[float]) -> dict[str, float]:
    return {"p50": 1000 * statistics.median(values), "p95": 1000 * percentile(list(values), 0.95), "n": len(values)}


# --- corpus and symbol build ---------------------------------------------------------------------

def corpus_files(root: Path) -> list[scanning.FileInfo]:
    """The files the server indexes in root, in path order."""
    return sorted(scanning.scan(root, IndexSettings()).files, key=lambda f: f.path)


def extract_all(root: Path, files: Sequence[scanning.FileInfo]) -> tuple[list[tuple[str, list[Symbol]]], float, float]:
    """(path, symbols) of every parseable file, with the seconds spent reading and parsing and
    the seconds spent in symbols.extract; the same skips as sync.read_and_chunk."""
    max_size = IndexSettings().max_file_size_kb * 1024
    out: list[tuple[str, list[Symbol]]] = []
    parse_s = extract_s = 0.0
    for f in files:
        started = time.perf_counter()
        data = (root / f.path).read_bytes()
        if len(data) > max_size or scanning.is_binary(data):
            continue
        try:
            tree = chunking.parse(f.language, data)
        except Exception:  # a parse timeout: the server then has no symbols for the file either
            tree = None
        parse_s += time.perf_counter() - started
        if tree is None:
            continue
        started = time.perf_counter()
        out.append((f.path, symbols.extract(tree, data, f.language)))
        extract_s += time.perf_counter() - started
    return out, parse_s, extract_s


def build_symbol_index(db_path: Path, by_file: Sequence[tuple[str, list[Symbol]]]) -> tuple[SymbolIndex, float]:
    """A fresh SymbolIndex fed file by file, as sync does; the seconds it took."""
    started = time.perf_counter()
    index = SymbolIndex(db_path)
    for path, syms in by_file:
        index.replace_file(path, syms)
    return index, time.perf_counter() - started


def symbol_build(root: Path, files: Sequence[scanning.FileInfo], runs: int, work: Path, log: Log) -> dict[str, Any]:
    """The symbol part of indexing, runs times: parse, extract, insert; then a reload from SQLite."""
    parse, extract, insert, load = [], [], [], []
    count = 0
    for i in range(runs):
        by_file, p, e = extract_all(root, files)
        db = work / f"symbols-{i}.db"
        index, s = build_symbol_index(db, by_file)
        count = len(index)
        index.close()
        started = time.perf_counter()
        SymbolIndex(db).close()
        load.append(time.perf_counter() - started)
        parse.append(p)
        extract.append(e)
        insert.append(s)
        log(f"  run {i + 1}: parse {p:.1f} s, extract {e:.1f} s, insert {s:.1f} s, reload {load[-1]:.2f} s "
            f"({count} symbols)")
    seconds = {"parse": parse, "extract": extract, "insert": insert, "reload": load,
               "extract_and_insert": [e + s for e, s in zip(extract, insert)]}
    return {"symbols": count, "runs": runs,
            "seconds": {k: {"median": statistics.median(v), "max": max(v), "all": v} for k, v in seconds.items()}}


def full_index(root: Path, cache: Path, log: Log, embed: bool = False) -> tuple[Any, dict[str, Any]]:
    """sync_workspace from scratch with the hash embedder; the open WorkspaceIndex and its timing.

    Its first pass writes every file's chunks (keyword-searchable at once) and symbols; the
    second fills in vectors. Only the first matters for symbols, so unless embed is set the
    second is cancelled (at ~50,000 chunks it takes many minutes even with the hash embedder)."""
    from lsp_server.index import WorkspaceIndex
    from lsp_server.sync import sync_workspace

    os.environ["CODE_CONTEXT_CACHE_DIR"] = str(cache)
    index = WorkspaceIndex(root, settings_for("hash"))
    first_pass: list[float] = []

    def progress(done: int, total: int, message: str) -> None:
        if not first_pass and message != "scanning" and not message.startswith("embedding") and done >= total:
            first_pass.append(time.perf_counter() - started)

    started = time.perf_counter()
    stats = sync_workspace(index, progress, cancelled=lambda: bool(first_pass) and not embed)
    seconds = time.perf_counter() - started
    if stats.error:
        raise RuntimeError(f"indexing failed: {stats.error}")
    out = {"keyword_index_s": first_pass[0] if first_pass else seconds, "seconds": seconds, "embedded": embed,
           "files": stats.files, "chunks": stats.chunks, "symbols": len(index.symbols)}
    log(f"  full index (sync_workspace, hash embedder): chunks and symbols written in {out['keyword_index_s']:.0f} s"
        f"{f', vectors too in {seconds:.0f} s' if embed else ''}; {stats.files} files, {stats.chunks} chunks, "
        f"{len(index.symbols)} symbols")
    return index, out


def all_symbols(index: SymbolIndex) -> list[tuple[str, Symbol]]:
    """Every (path, symbol) of an index, in path order."""
    return [(path, sym) for path in sorted(index.files()) for sym in index.symbols_in(path)]


# --- queries and judging -------------------------------------------------------------------------

def _words(name: str) -> list[str]:
    return [name[s:e].lower() for s, e in segments(name)]


def make_queries(syms: Sequence[tuple[str, Symbol]], seed: int = SEED,
                 mix: dict[str, int] | None = None) -> list[Query]:
    """The query set, reproducible from the corpus and the seed.

    exact: any name as written (rank 1 must carry that name; a name defined in several files
    cannot say which one is meant). The other kinds only use names defined in a single file,
    so the intended symbol (name + file, + container for members) is the one right answer;
    names starting with `_` are left out of them. prefix: the first 3 to len-1 characters;
    initials: each word's first letter (`gcs`); word_starts: 1-3 letters of each word
    (`getconsum`); member: `Container.name` with the container's innermost part."""
    mix = mix or MIX
    rng = random.Random(seed)
    files_of: dict[str, set[str]] = {}
    for path, sym in syms:
        files_of.setdefault(sym.name, set()).add(path)
    members_of: dict[tuple[str, str], set[str]] = {}
    for path, sym in syms:
        if sym.container:
            members_of.setdefault((sym.container.rsplit(".", 1)[-1], sym.name), set()).add(path)
    ordered = sorted(syms, key=lambda ps: (ps[0], ps[1].range, ps[1].name))
    single = [(p, s) for p, s in ordered if len(files_of[s.name]) == 1 and not s.name.startswith("_")]

    def pick(pool: Sequence[tuple[str, Symbol]], n: int, make: Callable[[str, Symbol], Query | None]) -> list[Query]:
        out: list[Query] = []
        seen: set[str] = set()
        for i in rng.sample(range(len(pool)), len(pool)):
            if len(out) >= n:
                break
            q = make(*pool[i])
            if q is not None and q.text.lower() not in seen:
                seen.add(q.text.lower())
                out.append(q)
        return out

    def exact(path: str, sym: Symbol) -> Query | None:
        return Query("exact", sym.name, sym.name, path) if len(sym.name) >= 2 else None

    def prefix(path: str, sym: Symbol) -> Query | None:
        if len(sym.name) < 5:
            return None
        return Query("prefix", sym.name[:rng.randint(3, len(sym.name) - 1)], sym.name, path)

    def abbreviation(kind: str) -> Callable[[str, Symbol], Query | None]:
        def make(path: str, sym: Symbol) -> Query | None:
            words = [w for w in _words(sym.name) if w]
            if not 2 <= len(words) <= 5:
                return None
            if kind == "initials":
                text = "".join(w[0] for w in words)
            else:
                text = "".join(w[:rng.randint(1, min(3, len(w)))] for w in words)
            if "".join(words).startswith(text):  # a plain prefix, not an abbreviation
                return None
            return Query(kind, text, sym.name, path)
        return make

    def member(path: str, sym: Symbol) -> Query | None:
        if not sym.container:
            return None
        last = sym.container.rsplit(".", 1)[-1]
        if len(members_of[(last, sym.name)]) != 1:
            return None
        return Query("member", f"{last}.{sym.name}", sym.name, path, last)

    return (pick(ordered, mix["exact"], exact) + pick(single, mix["prefix"], prefix)
            + pick(single, mix["initials"], abbreviation("initials"))
            + pick(single, mix["word_starts"], abbreviation("word_starts"))
            + pick(single, mix["member"], member))


def rank_of(query: Query, results: Sequence[Result]) -> int | None:
    """1-based rank of the first result that is the intended symbol, or None.
    exact: any symbol of exactly that name (case too); else name + file (+ container)."""
    for rank, (path, name, container) in enumerate(results, 1):
        if query.kind == "exact":
            if name == query.text:
                return rank
        elif name == query.name and path == query.path and (
                query.container is None or (container or "").rsplit(".", 1)[-1] == query.container):
            return rank
    return None


def quality(queries: Sequence[Query], answers: Sequence[Sequence[Result]]) -> dict[str, Any]:
    """Per query kind: share found at rank 1 and within TOP; misses listed for reading."""
    out: dict[str, Any] = {}
    for kind in MIX:
        ranks = [(q, rank_of(q, a)) for q, a in zip(queries, answers) if q.kind == kind]
        if not ranks:
            continue
        n = len(ranks)
        out[kind] = {
            "n": n, "rank1": sum(r == 1 for _, r in ranks) / n, f"top{TOP}": sum(bool(r and r <= TOP) for _, r in ranks) / n,
            "misses": [{"query": q.text, "name": q.name, "path": q.path, "rank": r}
                       for q, r in ranks if not (r and r <= (1 if kind == "exact" else TOP))],
        }
        if kind != "exact":
            outside = [r for q, r in ranks if _TEST_DIRS.isdisjoint(q.path.split("/")[:-1])]
            out[kind][f"top{TOP}_outside_tests"] = sum(bool(r and r <= TOP) for r in outside) / max(1, len(outside))
    abbrev = [rank_of(q, a) for q, a in zip(queries, answers) if q.kind in ("initials", "word_starts")]
    if abbrev:
        out["abbreviations"] = {"n": len(abbrev), f"top{TOP}": sum(bool(r and r <= TOP) for r in abbrev) / len(abbrev)}
    return out


def time_queries(ask: Callable[[str], Sequence[Result]], queries: Sequence[Query],
                 runs: int) -> tuple[list[list[float]], list[list[Result]]]:
    """Seconds per query for each of runs passes (the order shuffled per pass, seeded), and the
    answers of the first pass in query order."""
    per_run: list[list[float]] = []
    answers: list[list[Result]] = [[] for _ in queries]
    for run in range(runs):
        order = list(range(len(queries)))
        random.Random(SEED + run).shuffle(order)
        times = []
        for i in order:
            started = time.perf_counter()
            found = ask(queries[i].text)
            times.append(time.perf_counter() - started)
            if run == 0:
                answers[i] = list(found)
        per_run.append(times)
    return per_run, answers


def latency(per_run: Sequence[Sequence[float]]) -> dict[str, Any]:
    """Pooled p50/p95 over every timed query, and the median and worst of the per-pass figures."""
    runs = [_ms(t) for t in per_run]
    pooled = _ms([t for times in per_run for t in times])
    return {"pooled": pooled, "runs": runs,
            "p50_median_of_runs": statistics.median(r["p50"] for r in runs),
            "p95_median_of_runs": statistics.median(r["p95"] for r in runs),
            "p95_worst_run": max(r["p95"] for r in runs)}


def by_kind(queries: Sequence[Query], per_run: Sequence[Sequence[float]], runs: int) -> dict[str, dict[str, float]]:
    """Pooled latency per query kind (time_queries shuffles; undo it here)."""
    out: dict[str, list[float]] = {}
    for run, times in enumerate(per_run):
        order = list(range(len(queries)))
        random.Random(SEED + run).shuffle(order)
        for i, t in zip(order, times):
            out.setdefault(queries[i].kind, []).append(t)
    return {k: _ms(v) for k, v in out.items()}


# --- the server over stdio -----------------------------------------------------------------------

def stdio_phase(root: Path, cache: Path, queries: Sequence[Query], runs: int, log: Log) -> dict[str, Any]:
    """A real server indexes root from scratch; then runs passes of workspace/symbol."""
    client = LspClient(root, {"embedding": {"provider": "hash", "dimensions": 384}},
                       env={"CODE_CONTEXT_CACHE_DIR": str(cache)}).start()
    out: dict[str, Any] = {}
    try:
        client.initialize()
        started = time.perf_counter()
        while True:  # every file's chunks and symbols written: keyword search and symbols complete
            folder = client.status()["folders"][0]
            if folder["state"] == "error" and folder.get("lastError"):
                raise RuntimeError(f"indexing failed: {folder['lastError']}")
            if folder["files"] and folder["indexedFiles"] >= folder["files"]:
                break
            time.sleep(0.25)
        out["keyword_index_s"] = time.perf_counter() - started
        log(f"  server: every file's chunks and symbols written {out['keyword_index_s']:.0f} s after initialize")
        status = client.wait_idle(timeout=7200, poll=0.5)
        out["build_s"] = time.perf_counter() - started
        folder = status["folders"][0]
        out.update(files=folder["files"], chunks=folder["chunks"])
        log(f"  server build (initialize to idle, vectors included): {out['build_s']:.0f} s, {folder['files']} files, "
            f"{folder['chunks']} chunks")

        def ask(text: str) -> list[Result]:
            found = client.request("workspace/symbol", {"query": text}) or []
            return [(_path_of(root, s["location"]["uri"]), s["name"], s.get("containerName")) for s in found]

        for q in queries[:10]:  # warm up
            ask(q.text)
        per_run, answers = time_queries(ask, queries, runs)
    finally:
        client.shutdown()
    out["latency_ms"] = latency(per_run)
    out["latency_by_kind_ms"] = by_kind(queries, per_run, runs)
    out["quality"] = quality(queries, answers)
    out["answers"] = answers
    return out


def _path_of(root: Path, uri: str) -> str:
    from urllib.parse import unquote, urlparse

    path = Path(unquote(urlparse(uri).path))
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


# --- universal-ctags -----------------------------------------------------------------------------

def ctags_counts(root: Path, files: Sequence[scanning.FileInfo]) -> dict[str, Any] | None:
    """Tags universal-ctags finds in the same Python files, by kind; also over the whole
    directory (`ctags -R --languages=Python`, site-packages excluded). None without it."""
    exe = shutil.which("ctags")
    if exe is None:
        return None
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    if "Universal Ctags" not in version:
        return {"version": version, "error": "not universal-ctags"}
    listing = "\n".join(f.path for f in files if f.language == "python") + "\n"
    # Tags quote source lines, which are not all UTF-8 in the stdlib's tests: bytes, decoded leniently.
    same = subprocess.run([exe, "--languages=Python", "--output-format=json", "--fields=+K", "-f", "-", "-L", "-"],
                          input=listing.encode(), capture_output=True, cwd=root, check=True).stdout
    kinds: Counter[str] = Counter()
    for line in same.decode("utf-8", "replace").splitlines():
        tag = json.loads(line)
        if tag.get("_type") == "tag":
            kinds[tag.get("kind", "?")] += 1
    recursive = subprocess.run([exe, "-R", "--languages=Python", "--exclude=site-packages", "-f", "-", "."],
                               capture_output=True, cwd=root, check=True).stdout
    return {"version": version, "files": listing.count("\n"), "tags": sum(kinds.values()), "kinds": dict(kinds),
            "comparable": sum(kinds[k] for k in ("class", "function", "member")),
            "recursive_tags": recursive.count(b"\n")}


# --- running -------------------------------------------------------------------------------------

def kinds_of(syms: Sequence[tuple[str, Symbol]]) -> dict[str, int]:
    return dict(Counter(lsp.SymbolKind(s.kind).name for _, s in syms).most_common())


def run(root: Path, runs: int, work: Path, log: Log, stdio: bool = True, mix: dict[str, int] | None = None,
        use_ctags: bool = True) -> dict[str, Any]:
    """Everything above on one corpus; the report as a dict."""
    files = corpus_files(root)
    langs = Counter(f.language for f in files)
    log(f"corpus {root}: {len(files)} files ({', '.join(f'{k} {v}' for k, v in langs.most_common(4))}, ...)")
    out: dict[str, Any] = {"machine": machine(), "corpus": {"root": str(root), "files": len(files),
                                                             "languages": dict(langs)}}
    log("== symbol build (parse, extract, insert)")
    out["symbol_build"] = symbol_build(root, files, runs, work, log)

    log("== full index, in-process")
    index, out["full_index"] = full_index(root, work / "cache-inprocess", log)
    try:
        syms = all_symbols(index.symbols)
        lang_of = {f.path: f.language for f in files}
        out["symbols"] = {"total": len(syms), "kinds": kinds_of(syms),
                          "by_language": dict(Counter(lang_of.get(p, "?") for p, _ in syms)),
                          "python_kinds": kinds_of([(p, s) for p, s in syms if lang_of.get(p) == "python"])}
        queries = make_queries(syms, mix=mix)
        out["queries"] = [attrs.asdict(q) for q in queries]
        log(f"== {len(queries)} queries ({', '.join(f'{k} {v}' for k, v in Counter(q.kind for q in queries).items())}), "
            f"{runs} passes in-process")

        def ask(text: str) -> list[Result]:
            return [(p, s.name, s.container) for p, s, _ in index.symbols.search(text, MAX_RESULTS)]

        for q in queries[:10]:  # warm up: regex caches, path ranks
            ask(q.text)
        per_run, answers = time_queries(ask, queries, runs)
    finally:
        index.close()
    server = {"latency_ms": latency(per_run), "latency_by_kind_ms": by_kind(queries, per_run, runs),
              "quality": quality(queries, answers)}
    out["server"] = server
    _log_side(log, "server-side", server)

    if stdio:
        log(f"== over stdio: server build from scratch, then {runs} passes of workspace/symbol")
        out["stdio"] = stdio_phase(root, work / "cache-stdio", queries, runs, log)
        same = sum(a == b for a, b in zip(answers, out["stdio"].pop("answers")))
        out["stdio"]["same_answers_as_server_side"] = same / len(queries)
        _log_side(log, "stdio", out["stdio"])
    if use_ctags:
        out["ctags"] = ctags_counts(root, files)
        if out["ctags"] and "tags" in out["ctags"]:
            c = out["ctags"]
            log(f"== ctags ({c['version']}): {c['tags']} tags in {c['files']} Python files {c['kinds']}; "
                f"class+function+member {c['comparable']}; ctags -R over the directory {c['recursive_tags']}")
    out["targets"] = targets(out)
    return out


def _log_side(log: Log, name: str, side: dict[str, Any]) -> None:
    lat, q = side["latency_ms"], side["quality"]
    log(f"  {name}: p50 {lat['p50_median_of_runs']:.2f} ms, p95 {lat['p95_median_of_runs']:.2f} ms "
        f"(median of {len(lat['runs'])} passes; worst pass p95 {lat['p95_worst_run']:.2f} ms)")
    log("  quality: " + ", ".join(f"{k} rank1 {v['rank1']:.0%} top{TOP} {v[f'top{TOP}']:.0%}"
                                 for k, v in q.items() if "rank1" in v)
        + (f"; abbreviations top{TOP} {q['abbreviations'][f'top{TOP}']:.0%}" if "abbreviations" in q else ""))


def targets(out: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, met or missed."""
    t: dict[str, Any] = {}
    for side in ("server", "stdio"):
        if side in out:
            p95 = out[side]["latency_ms"]["p95_median_of_runs"]
            t[f"{side}_p95_ms"] = {"value": p95, "target": TARGET_P95_MS[side], "met": p95 < TARGET_P95_MS[side]}
    q = out["server"]["quality"]
    if "exact" in q:
        t["exact_rank1"] = {"value": q["exact"]["rank1"], "target": TARGET_EXACT_RANK1,
                            "met": q["exact"]["rank1"] >= TARGET_EXACT_RANK1}
    for kind in ("abbreviations", "initials", "word_starts"):
        if kind in q:
            v = q[kind][f"top{TOP}"]
            t[f"{kind}_top{TOP}"] = {"value": v, "target": TARGET_ABBREV_TOP5, "met": v >= TARGET_ABBREV_TOP5}
    return t


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="symbol builds and query passes per side")
    ap.add_argument("--root", type=Path, default=None, help="corpus (default: this Python's stdlib)")
    ap.add_argument("--no-stdio", action="store_true", help="skip the server over stdio (a second full build)")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "symbols.json")
    args = ap.parse_args(argv)
    log = lambda s: print(s, flush=True)  # noqa: E731
    log(f"machine: {machine()}")
    work = Path(tempfile.mkdtemp(prefix="cc-symbols-"))
    started = time.perf_counter()
    try:
        out = run((args.root or stdlib_dir()).resolve(), args.runs, work, log, stdio=not args.no_stdio)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["seconds"] = time.perf_counter() - started
    out["date"] = datetime.date.today().isoformat()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    log(f"wrote {args.out} ({out['seconds'] / 60:.0f} min)")
    return out


if __name__ == "__main__":
    main()
