"""The benchmarks at smoke size: they keep working, and what they measure is sane.

Benchmarks are not tests; this runs them on a few hundred chunks of stdlib code with the
zero-cost hash embedder, through the real language server, in well under a minute.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

from bench import corpus, quality
from bench.corpus import Query

JS = """\
'use strict';

/**
 * Module dependencies.
 */

var path = require('path');

/**
 * Set the response status `code` and return this.
 *
 * @param {Number} code
 * @public
 */

res.status = function status(code) {
  this.statusCode = code;
  return this;
};

/** Return the host name from the Host header field. */
defineGetter(req, 'hostname', function hostname() {
  return this.get('Host');
});

function helperWithoutDoc(a) { return a; }
"""

PY = '''\
class Parser:
    """Parse configuration files into dictionaries.

    More words here.
    """

    def read_file(self, f):
        """Read and parse a file-like object."""
        return f.read()

    def empty(self):
        """Nothing but a docstring."""

    def one_liner(self): """Kept: shares the header line."""
'''


def test_python_docstrings_are_blanked_keeping_lines_and_syntax() -> None:
    defs, spans = corpus.python_definitions(PY.encode(), "p.py")
    stripped = corpus.blank_python(PY, spans)
    assert stripped.count("\n") == PY.count("\n")
    ast.parse(stripped)  # a docstring that was the whole body became `pass`
    assert "Parse configuration" not in stripped and "Nothing but" not in stripped
    assert "Kept: shares the header line." in stripped
    by_name = {d.name: d for d in defs}
    assert by_name["Parser"].doc.startswith("Parse configuration files") and by_name["Parser"].is_class
    assert (by_name["read_file"].start_line, by_name["read_file"].end_line) == (7, 9)
    assert by_name["one_liner"].doc is None
    # Lines outside the docstrings are untouched.
    for before, after in zip(PY.splitlines(), stripped.splitlines()):
        assert after in (before, "", "        pass")


def test_jsdoc_above_functions_is_blanked_and_becomes_queries() -> None:
    defs, spans = corpus.javascript_definitions(JS.encode(), "lib/response.js")
    stripped = corpus.blank_rows(JS, spans)
    assert stripped.count("\n") == JS.count("\n")
    assert "Set the response status" not in stripped and "Return the host name" not in stripped
    assert "Module dependencies." in stripped  # not above a function: stays
    by_name = {d.name: d for d in defs}
    assert corpus.first_sentence(by_name["status"].doc) == "Set the response status `code` and return this."
    assert by_name["status"].start_line == JS.splitlines().index("res.status = function status(code) {") + 1
    assert by_name["hostname"].doc == "Return the host name from the Host header field."
    assert by_name["helperWithoutDoc"].doc is None
    docs, idents = corpus.make_queries(defs)
    assert [q.name for q in docs] == ["status", "hostname"]
    assert [q.text for q in idents] == ["helper without doc"]


TS = """\
export function mapTo<R>(value: R): OperatorFunction<unknown, R>;
/** @deprecated Use a closure instead of a `thisArg`. */
export function mapTo<T, R>(value: R, thisArg: T): OperatorFunction<T, R>;

/**
 * Emits the given constant value on the output Observable every time the source emits.
 *
 * @param value The value to map each source value to.
 */
export function mapTo<R>(value: R, thisArg?: unknown): OperatorFunction<unknown, R> {
  return map(() => value);
}

/** The configuration object of a retry. */
export interface RetryConfig {
  count?: number;
}

export class Scheduler {
  /** Returns the current time, as a number. */
  public now(): number {
    return Date.now();
  }
}
"""


def test_typescript_overloads_are_one_definition_with_the_described_jsdoc() -> None:
    defs, spans = corpus.typescript_definitions(TS.encode(), "src/mapTo.ts")
    stripped = corpus.blank_rows(TS, spans)
    assert stripped.count("\n") == TS.count("\n")
    assert "Emits the given constant" not in stripped and "@deprecated" in stripped  # tags-only doc stays
    assert sorted(d.name for d in defs) == ["RetryConfig", "Scheduler", "mapTo", "now"]  # each once
    by_name = {d.name: d for d in defs}
    lines = TS.splitlines()
    map_to = by_name["mapTo"]
    assert (map_to.start_line, map_to.end_line) == (1, lines.index("}") + 1)  # signatures through the body
    assert map_to.doc.startswith("Emits the given constant value")
    assert by_name["RetryConfig"].doc == "The configuration object of a retry." and by_name["RetryConfig"].is_class
    assert by_name["now"].doc == "Returns the current time, as a number."
    docs, idents = corpus.make_queries(defs)
    assert {q.name for q in docs} == {"mapTo", "RetryConfig", "now"}
    assert [q.text for q in idents] == ["map to"]  # interfaces and classes ask no identifier query


def test_first_sentence_and_short_or_duplicate_queries() -> None:
    assert corpus.first_sentence("Return the thing.  More text.\n\nParagraph.") == "Return the thing."
    assert corpus.first_sentence("No period here\nstill same paragraph\n\nnext") == \
        "No period here still same paragraph"
    defs = [corpus.Definition("a.py", "f", 1, 2, "python", "Too short."),
            corpus.Definition("a.py", "g", 3, 4, "python", "Same words in both places."),
            corpus.Definition("b.py", "h", 3, 4, "python", "Same words in both places."),
            corpus.Definition("b.py", "parse_header_line", 5, 9, "python", "Parse one header line into a pair.")]
    docs, idents = corpus.make_queries(defs)
    assert [q.name for q in docs] == ["parse_header_line"]
    assert [q.text for q in idents] == ["parse header line"]


def test_hit_rule_and_metrics() -> None:
    q = Query("q", "a.py", 10, 19, "python", "f")  # 10 lines
    assert quality.is_hit(("a.py", 10, 19), q)
    assert quality.is_hit(("a.py", 15, 40), q)  # covers half of the target
    assert not quality.is_hit(("b.py", 10, 19), q)
    assert not quality.is_hit(("a.py", 16, 40), q)  # 4 of 10 target lines, 4 of 25 result lines
    assert quality.is_hit(("a.py", 18, 19), q)  # a small result wholly inside the target
    assert not quality.is_hit(("a.py", 1, 100), q)  # long result: only by covering half of itself
    assert quality.is_hit(("a.py", 1, 25), q)  # 25 lines: not "over 60", the target rule applies
    assert quality.first_hit_rank([("b.py", 1, 5), ("a.py", 12, 14)], q) == 2
    m = quality.metrics([1, None, 2, 11])
    assert m == {"mrr@10": pytest.approx((1 + 0.5) / 4), "recall@1": 0.25, "recall@10": 0.5, "n": 4}
    fused = quality.rrf_results([("a.py", 1, 2), ("b.py", 1, 2)], [("b.py", 1, 2), ("c.py", 1, 2)])
    assert fused[0] == ("b.py", 1, 2) and len(fused) == 3


def test_symbol_signal_prefers_the_definition_named_by_the_query() -> None:
    from lsp_server import search
    from lsp_server.store import Hit

    words = search.query_words("get content charset")
    assert search.name_match(words, "get_content_charset", contained_weight=0) == 1.0
    assert 0 < search.name_match(words, "get_charset", contained_weight=0) < 1.0
    assert search.name_match(words, "close") == 0.0
    assert search.query_words("parseHeader(raw_line)") == {"parse", "header", "raw", "line"}
    def hit(id_: str, score: float, start: int) -> Hit:
        return Hit(id_, score, "a.py", "python", start, start + 9, "", 0, "")

    # The caller is first in both lists, the definition close behind; its name decides.
    dense = [hit("caller", 0.80, 1), hit("def", 0.78, 11), hit("other", 0.50, 21)]
    keyword = [hit("caller", 9.0, 1), hit("def", 8.5, 11), hit("other", 2.0, 21)]
    assert [h.id for h, _ in search.fuse(dense, keyword)][0] == "caller"
    fused = search.fuse(dense, keyword, symbol={"def": 1.0})
    assert [h.id for h, _ in fused] == ["def", "caller", "other"]


def test_quality_benchmark_through_the_server(tmp_path: Path) -> None:
    result = quality.run(provider="hash", backend="server", cache_dir=tmp_path / "cache", work=tmp_path,
                         packages=["json", "urllib"], javascript=False, corpora=["stdlib"], log=lambda s: None)
    part = result["corpora"]["stdlib"]
    assert result["backend"] == "server" and part["corpus"]["chunks"] > 50
    for name in ("doc", "identifier"):
        s = part["sets"][name]
        assert s["all"]["hybrid"]["n"] > 5
        for mode in ("keyword", "semantic", "hybrid", "rrf"):
            for metric in ("mrr@10", "recall@1", "recall@10"):
                assert 0.0 <= s["all"][mode][metric] <= 1.0
            assert s["all"][mode]["recall@1"] <= s["all"][mode]["mrr@10"] <= s["all"][mode]["recall@10"]
    # Asked for a function by its own name split into words, hybrid finds most of them.
    assert part["sets"]["identifier"]["all"]["hybrid"]["recall@10"] >= 0.6


def test_perf_benchmark_smoke(tmp_path: Path) -> None:
    from bench import perf

    out = perf.main(["--sizes", "300:hash", "--edits", "2", "--rounds", "1", "--restarts", "1",
                     "--resyncs", "2", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "perf.json"),
                     "--plot", str(tmp_path / "plot.png"), "--during", "hash"])
    size = out["sizes"][0]
    server = size["server"]
    during = size["during_indexing"]
    assert during["chunks"] == server["chunks"] and 0 < server["first_vector_s"] <= server["index_s"]
    assert during["search_ms"]["keyword"]["n"] >= 1 and during["index_cpu_s"] > 0
    assert 100 <= server["chunks"] <= 1000
    assert server["index_chunks_per_s"] > 0 and server["rss_peak_indexing_mib"] >= server["rss_rest_mib"] * 0.5
    assert all(not math.isnan(server["search_ms"][m]["p95"]) for m in perf.MODES)
    assert all(server["search_settled_ms"][m]["n"] == 40 for m in perf.MODES) and server["quiet_wait_s"] >= 0
    assert server["save_to_searchable_ms"]["n"] == 2
    assert size["inprocess"]["resync_s"]["changed_files"] == 0
    assert size["inprocess"]["vectors"] == server["chunks"]
    assert (tmp_path / "plot.png").stat().st_size > 10_000
    from bench import report

    table = report.perf_block(out)
    warm = f"{server['search_settled_ms']['hybrid']['p50']:.0f} / {server['search_settled_ms']['hybrid']['p95']:.0f}"
    assert f"| **search hybrid over stdio, warm, ms (p50 / p95)** | {warm} |" in table
    kw = during["search_ms"]["keyword"]
    assert f"| **search keyword during the first index, ms (p50 / p95)** | {kw['p50']:.0f} / {kw['p95']:.0f} |" in table


def test_symbols_benchmark_smoke(tmp_path: Path) -> None:
    from bench import symbols as bench_symbols

    root = Path(__file__).resolve().parent / "fixtures" / "workspace"
    mix = {"exact": 8, "prefix": 4, "initials": 4, "word_starts": 4, "member": 3}
    out = bench_symbols.run(root, 1, tmp_path, lambda s: None, stdio=True, mix=mix, use_ctags=False)
    assert out["symbols"]["total"] == out["symbol_build"]["symbols"] >= 10
    queries = [bench_symbols.Query(**q) for q in out["queries"]]
    assert bench_symbols.make_queries([], mix=mix) == [] and len(queries) >= 10
    assert {"fetch_with_retry", "parse_header"} & {q.name for q in queries}
    # Asked by its exact name, the symbol comes first, in-process and over stdio alike.
    for side in ("server", "stdio"):
        assert out[side]["quality"]["exact"]["rank1"] == 1.0
        assert out[side]["latency_ms"]["pooled"]["n"] == len(queries)
    assert out["stdio"]["same_answers_as_server_side"] == 1.0
    fwr = bench_symbols.Query("initials", "fwr", "fetch_with_retry", "src/http_client.py")
    assert bench_symbols.rank_of(fwr, [("a.py", "fetch_with_retry", None), ("src/http_client.py", "fetch_with_retry", None)]) == 2
