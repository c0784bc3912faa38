"""Running the catalogue: shared conforming engines, proxy and stand-in entries in front of them,
misconfigured launches, conforming runs.

* ``proxy`` and ``standin`` (per request): ONE launch of the row's conforming engine
  (``glmverify.session.start_engine``), or the running engine ``--endpoint`` names, shared by
  every entry of that row: each entry gets its own ``FaultProxy`` in front of it and its suite
  modules run with ``pytest ... --endpoint PROXY --row ROW``. The conforming runs (``--repeat``,
  every suite the row serves, no proxy) use the same launch first.
* ``launch`` (and ``standin`` with ``--standin-via launch``): ``pytest <modules> --matrix TMP -m
  cpu`` on the entry's derived one-row matrix (``plan.derived_matrix``): the plugin launches
  the misconfigured engine, as in a real run.

``--jobs N`` runs N entries at a time (threads, each waiting on one pytest run). Entries naming
``checks`` are narrowed to them (``-k``); a run stops at its first failure when that cannot hide
an expected one. Outcomes come back in catalogue order, the conforming runs first.
"""
from __future__ import annotations

import concurrent.futures as cf
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..faultproxy import FAULTS, Fault, FaultProxy, standin_request
from ..matrix import load
from ..paths import DEFAULT_MATRIX, RESULTS_DIR
from ..session import Options, start_engine
from .judge import judge, observe
from .model import DEFAULT_TIMEOUT, REFERENCE_ROWS, SUITES, FaultCase, Outcome
from .plan import conforming_suites, derived_matrix, launch_row_id
from .pytest_runs import run_pytest, stop_children


@dataclass
class RunOptions:
    results: Path
    repeat: int = 1
    conforming: bool = True
    jobs: int = 1
    accuracy_samples: int = 8
    standin_via: str = "request"
    timeout: float = DEFAULT_TIMEOUT
    matrix: Path = DEFAULT_MATRIX
    stop_early: bool = True
    endpoints: dict[str, str] = field(default_factory=dict)  # row -> URL of a running conforming engine
    conforming_rows: tuple[str, ...] = REFERENCE_ROWS  # the rows that get conforming runs


def _progress(msg: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _fault_args(case: FaultCase, opts: RunOptions) -> list[str]:
    # a generous per-request bound: two engines sharing two cores are slow, and a timeout must not
    # pass for a detection (a hung engine still fails)
    args = ["--accuracy-samples", str(opts.accuracy_samples), "--request-timeout", "600"]
    if "accuracy_smoke" in case.suites:
        args += accuracy_baseline_args()
    if case.select:
        args += ["-k", case.select]
    if case.checks:
        args += ["-k", " or ".join(case.checks)]
    # stop at the first failure when that cannot hide an expected one (one feature expected, only it
    # run, at most one named check); not for speed: a speculating row's twin is measured after it
    # (the speed-up is decided on the run's document), and its checks share one measurement anyway
    if opts.stop_early and len(case.expect_failed) == 1 and case.suites == case.expect_failed and len(case.checks) <= 1 \
            and "serving_performance" not in case.suites:
        args.append("-x")
    return args


def accuracy_baseline_args() -> list[str]:
    """make verify's recorded reference outcomes, when there are some: the paired and steady
    accuracy decisions run against them (without, they are skipped and decide nothing)."""
    baseline = RESULTS_DIR / "accuracy-baseline.json"
    return [f"--accuracy-baseline={baseline}"] if baseline.is_file() else []


def run_conforming(row, url: str, n: int, opts: RunOptions) -> Outcome:
    """Conforming run ``n`` of ``row`` against ``url``: every suite it serves, nothing may fail (the
    accuracy suite held to make verify's baseline where one is recorded, as the fault runs are)."""
    features = conforming_suites(row)
    out_dir = opts.results / f"conforming-{row.id}-{n}"
    _progress(f"conforming run {n} on {row.id}: {', '.join(features)}")
    acc = accuracy_baseline_args() if "accuracy_smoke" in features else []
    rc, secs = run_pytest([*[str(SUITES / f"test_{f}.py") for f in features], "--endpoint", url, "--row", row.id,
                           "--matrix", str(opts.matrix), "--request-timeout", "600", *acc], out_dir, opts.timeout)
    o = judge(f"conforming-{row.id}-{n}", "conforming", row.id, [], features, observe(out_dir, row.id), rc, secs, out_dir)
    _progress(f"conforming run {n} on {row.id}: {'ok' if o.detected else 'FAILURES'} in {secs:.0f}s")
    return o


def run_proxy_case(case: FaultCase, upstream: str, opts: RunOptions) -> Outcome:
    """A proxy or per-request stand-in entry, through its own ``FaultProxy`` in front of ``upstream``."""
    if case.kind == "standin":
        f = Fault(f"standin_{case.standin}", f"stand-in fault {case.standin}", request=standin_request(case.standin))
    else:
        f = FAULTS[case.fault]
    out_dir = opts.results / case.id
    _progress(f"{case.id}: proxy {f.name} -> {', '.join(case.suites)}")
    with FaultProxy(upstream, f) as proxy:
        rc, secs = run_pytest([*case.modules(), "--endpoint", proxy.url, "--row", case.row, "--matrix", str(opts.matrix),
                               *_fault_args(case, opts)], out_dir, opts.timeout)
        stats = dict(proxy.stats)
    o = judge(case.id, case.kind, case.row, case.expect_failed, case.suites, observe(out_dir, case.row), rc, secs, out_dir,
              case.checks)
    o.mutated = f"{stats.get('mutated', 0)}/{stats.get('requests', 0)}"
    _progress(f"{case.id}: {o.word} {o.observed} in {secs:.0f}s")
    return o


def run_launch_case(case: FaultCase, opts: RunOptions) -> Outcome:
    """A launch entry: the plugin launches the derived, misconfigured one-row matrix."""
    out_dir = opts.results / case.id
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="glmverify-fault-") as tmp:
        standin_env = case.standin if case.kind == "standin" else None
        mpath = derived_matrix(case, Path(tmp), opts.matrix, standin_env)
        (out_dir / "matrix.yaml").write_text(mpath.read_text())  # kept for the record
        _progress(f"{case.id}: launching row {case.row} misconfigured -> {', '.join(case.suites)}")
        rc, secs = run_pytest([*case.modules(), "--matrix", str(mpath), "-m", "cpu", *_fault_args(case, opts)],
                              out_dir, opts.timeout)
    o = judge(case.id, case.kind, case.row, case.expect_failed, case.suites, observe(out_dir, launch_row_id(case)), rc,
              secs, out_dir, case.checks)
    _progress(f"{case.id}: {o.word} {o.observed} in {secs:.0f}s")
    return o


def _shared_runs(row, url: str, todo: list[FaultCase], opts: RunOptions) -> list[Outcome]:
    out = []
    if opts.conforming and row.id in opts.conforming_rows:
        for n in range(1, opts.repeat + 1):
            out.append(run_conforming(row, url, n, opts))
    return out + _pooled(lambda c: run_proxy_case(c, url, opts), todo, opts.jobs)


def _pooled(fn, cases: list[FaultCase], jobs: int) -> list[Outcome]:
    """``fn`` over ``cases``, ``jobs`` at a time (each a pytest run; launch entries each start an engine)."""
    if jobs <= 1:
        return [fn(c) for c in cases]
    pool = cf.ThreadPoolExecutor(jobs)
    try:
        return list(pool.map(fn, cases))
    except BaseException:
        stop_children()  # the worker threads wait on these runs
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_catalogue(cases: list[FaultCase], opts: RunOptions) -> list[Outcome]:
    """Every case (and the conforming runs ``opts`` asks for); outcomes in catalogue order."""
    matrix = load(opts.matrix)
    outcomes: list[Outcome] = []
    shared = [c for c in cases if c.kind == "proxy" or (c.kind == "standin" and opts.standin_via == "request")]
    launched = [c for c in cases if c not in shared]
    rows = list(dict.fromkeys([c.row for c in shared] + (list(opts.conforming_rows) if opts.conforming else [])))
    for row_id in rows:
        row = matrix.row(row_id)
        todo = [c for c in shared if c.row == row_id]
        if row_id in opts.endpoints:
            url = opts.endpoints[row_id]
            _progress(f"{row_id}: using the running engine at {url}")
            outcomes += _shared_runs(row, url, todo, opts)
            continue
        _progress(f"{row_id}: launching the conforming engine for {len(todo)} fault(s)"
                  + (f" and {opts.repeat} conforming run(s)" if opts.conforming else ""))
        t0 = time.monotonic()
        eng_opts = Options(matrix_path=Path(opts.matrix), results_dir=opts.results / f"engine-{row_id}",
                           request_timeout=600)
        try:
            live = start_engine(row, eng_opts, opts.results / f"engine-{row_id}" / "logs", _progress)
        except Exception as exc:  # noqa: BLE001 - every entry of the row is then undetectable: report it
            msg = f"conforming engine of {row_id} did not start: {str(exc)[:300]}"
            _progress(msg)
            outcomes += [Outcome(c.id, c.kind, c.row, c.expect_failed, detail=msg) for c in todo]
            continue
        _progress(f"{row_id}: ready in {time.monotonic() - t0:.0f}s at {live.server.base_url}")
        try:
            outcomes += _shared_runs(row, live.server.base_url, todo, opts)
        finally:
            live.server.stop()
            _progress(f"{row_id}: engine stopped")
    outcomes += _pooled(lambda c: run_launch_case(c, opts), launched, opts.jobs)
    order = {c.id: i for i, c in enumerate(cases)}
    return sorted(outcomes, key=lambda o: (o.kind != "conforming", order.get(o.id, -1)))
