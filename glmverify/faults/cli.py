"""The fault catalogue: every check can fail, proven against the reference engine.

``python -m glmverify.faults`` (``make faults``) runs the entries of ``fixtures/faults.yaml``
(all, or those ``--only``/``--kind``/``--row`` select), prints the table and the coverage, writes
``faults.json``/``faults.md`` and exits 0 only when ``report.summary`` holds; 2 on an invalid
catalogue. ``--list`` prints the selected entries; ``record`` re-records the offline tests'
engine answers (``recordings``).
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from ..engines import install_signal_cleanup
from ..matrix import load
from ..paths import DEFAULT_MATRIX, RESULTS_DIR
from .catalogue import load_catalogue
from .coverage import engine_coverage
from .model import CATALOGUE, DEFAULT_TIMEOUT, KINDS, REFERENCE_ROWS, CatalogueError
from .plan import select, unknown_ids
from .pytest_runs import stop_children
from .recordings import RECORDINGS, record
from .report import console_text, write_results
from .runner import RunOptions, run_catalogue


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["record"]:
        ap = argparse.ArgumentParser(prog="python -m glmverify.faults record")
        ap.add_argument("--endpoint", required=True)
        ap.add_argument("--out", type=Path, default=RECORDINGS)
        ap.add_argument("--what", default="chat,messages",
                        help="chat,messages (row reference) or metrics (row reference-ngram)")
        a = ap.parse_args(argv[1:])
        print(record(a.endpoint, a.out, tuple(a.what.split(","))))
        return 0
    ap = argparse.ArgumentParser(prog="python -m glmverify.faults", description=__doc__.split("\n\n")[0])
    ap.add_argument("--catalogue", type=Path, default=CATALOGUE)
    ap.add_argument("--matrix", type=Path, default=DEFAULT_MATRIX)
    ap.add_argument("--only", action="append", default=[], metavar="ID",
                    help="run only these entries (comma separated, repeatable; a trailing * matches a prefix)")
    ap.add_argument("--kind", action="append", default=[], choices=KINDS, help="run only entries of this kind")
    ap.add_argument("--row", action="append", default=[], choices=REFERENCE_ROWS, metavar="ROW",
                    help="the whole catalogue for these reference rows only (repeatable): their entries, their "
                         "conforming runs and their engines' coverage, e.g. --row reference-sglang for SGLang")
    ap.add_argument("--repeat", type=int, default=1, help="conforming runs per reference row (default 1; `make faults` asks 3: none may fail)")
    ap.add_argument("--no-conforming", action="store_true", help="skip the conforming runs")
    ap.add_argument("--jobs", type=int, default=1, help="entries run at once: proxy entries against the shared engine, launch entries each with "
                         "its own engine (default 1)")
    ap.add_argument("--accuracy-samples", type=int, default=8, help="GSM8K questions per fault run (default 8)")
    ap.add_argument("--standin-via", choices=["request", "launch"], default="request",
                    help="stand-in faults: per request through the proxy (default) or a launch with GLM_STANDIN_FAULTS")
    ap.add_argument("--full", action="store_true", help="run every check of a fault's suites (default: stop at the first failure)")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per pytest run (default 1800)")
    ap.add_argument("--results", type=Path, default=None, help="results directory (default results/faults-<UTC time>/)")
    ap.add_argument("--endpoint", action="append", default=[], metavar="ROW=URL",
                    help="use a running conforming engine for ROW's proxy/stand-in entries instead of launching one")
    ap.add_argument("--list", action="store_true", help="print the catalogue and exit")
    a = ap.parse_args(argv)
    if a.repeat < 1 or a.jobs < 1:
        ap.error("--repeat and --jobs must be at least 1")
    endpoints = {}
    for spec in a.endpoint:
        row, sep, url = spec.partition("=")
        if not sep or not url.startswith(("http://", "https://")):
            ap.error(f"--endpoint: expected ROW=http://HOST:PORT, got {spec!r}")
        endpoints[row] = url
    try:
        cases = load_catalogue(a.catalogue, a.matrix)
    except CatalogueError as exc:
        print(f"glmverify.faults: invalid catalogue:\n{exc}", file=sys.stderr)
        return 2
    only = [p for v in a.only for p in v.split(",") if p]
    unknown = unknown_ids(cases, only)
    if unknown:
        ap.error(f"--only: no such fault(s) {unknown}")
    cases = select(cases, only, a.kind, a.row)
    if a.list:
        for c in cases:
            print(f"{c.id:40s} {c.kind:8s} {c.row:16s} {','.join(c.expect_failed) or '(control)':35s} {c.why}")
        return 0
    # the whole catalogue: conforming runs and check coverage belong to it, not to a selection
    whole = not only and not a.kind
    results = a.results or RESULTS_DIR / ("faults-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"))
    opts = RunOptions(results=results.resolve(), repeat=a.repeat, conforming=not a.no_conforming and whole,
                      jobs=a.jobs, accuracy_samples=a.accuracy_samples, standin_via=a.standin_via, timeout=a.timeout,
                      matrix=a.matrix.resolve(), stop_early=not a.full, endpoints=endpoints,
                      conforming_rows=tuple(a.row) or REFERENCE_ROWS)
    opts.results.mkdir(parents=True, exist_ok=True)
    install_signal_cleanup()  # SIGTERM: stop our engine, then the pytest runs (below)
    t0 = time.monotonic()
    try:
        outcomes = run_catalogue(cases, opts)
    except KeyboardInterrupt:
        print("glmverify.faults: interrupted", file=sys.stderr)
        return 130
    finally:
        stop_children()
    total = time.monotonic() - t0
    matrix = load(opts.matrix)
    cov = engine_coverage(outcomes, matrix, set(a.row) or None) if whole else None
    ok, line = write_results(opts.results, outcomes, cov, total)
    print()
    print(console_text(outcomes, cov))
    print()
    print(f"{line}; total {total / 60:.1f} min; results in {opts.results}")
    return 0 if ok else 1
