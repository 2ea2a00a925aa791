"""`make bench`: retrieval quality, then performance at growing sizes, then docs/BENCHMARKS.md,
then workspace/symbol on the stdlib (bench/results/symbols.json; its section of the doc is
written by hand).

Each part is also runnable alone (bench.quality, bench.perf, bench.indexing, bench.report,
bench.symbols, bench.faces).
Everything runs on a fresh cache: no vector, index or result from an earlier run is reused.

    .venv/bin/python -m bench.run [--quick] [--skip-quality] [--skip-perf] [--skip-symbols] [--sizes ...]

--quick: the hash embedder everywhere and sizes 2,000 and 20,000 (a few minutes; the
numbers it writes are not the published ones).
"""

from __future__ import annotations

import argparse
import datetime
import json
import time

from bench import faces, perf, provider, quality, report, symbols
from bench.common import machine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-perf", action="store_true")
    ap.add_argument("--skip-symbols", action="store_true")
    ap.add_argument("--skip-provider", action="store_true")
    ap.add_argument("--skip-faces", action="store_true")
    ap.add_argument("--sizes", nargs="+", help="for bench.perf, e.g. 2000:local 20000:hash")
    args = ap.parse_args()
    log = lambda s: print(s, flush=True)  # noqa: E731
    log(f"machine: {machine()}")
    date = datetime.date.today().isoformat()
    started = time.perf_counter()
    if not args.skip_quality:
        log("== retrieval quality")
        q = quality.run(provider="hash" if args.quick else "local", log=log)
        q["date"] = date
        quality.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (quality.RESULTS_DIR / "quality.json").write_text(json.dumps(q, indent=1))
        report.render(q, None)
    if not args.skip_perf:
        log("== performance")
        sizes = args.sizes or (["2000:hash", "20000:hash"] if args.quick else perf.DEFAULT_SIZES)
        p = perf.main(["--sizes", *sizes])
        p["date"] = date
        (perf.RESULTS_DIR / "perf.json").write_text(json.dumps(p, indent=1))
        report.render(None, p)
    if not args.skip_symbols:
        log("== workspace/symbol")
        symbols.main(["--runs", "2" if args.quick else "5"])
    if not args.skip_provider:
        log("== remote provider throughput (bench.provider)")
        provider.main(["--runs", "1"] if args.quick else [])
    if not args.skip_faces:
        log("== faces: CLI cold and forwarded, MCP beside the language server (bench.faces)")
        faces.main(["--provider", "hash", "--runs", "5", "--queries", "20"] if args.quick else [])
    log(f"done in {(time.perf_counter() - started) / 60:.0f} min; docs/BENCHMARKS.md updated")


if __name__ == "__main__":
    main()
