"""The fault catalogue: every check can fail, proven against the reference engine.

``python -m glmverify.faults`` (``make faults``) runs every entry of ``fixtures/faults.yaml`` and
prints a table: fault, the features that must come out ``failed``, what was observed, detected or
not. It exits non-zero unless every fault is detected, every control passes and the conforming
runs have no failure.

How each kind runs (``--jobs N``: N entries at a time):

* ``proxy`` and ``standin``: ONE launch of the row's conforming engine (``glmverify.session.
  start_engine``), shared by every entry of that row: each entry gets its own
  ``glmverify.faultproxy.FaultProxy`` in front of it and the entry's suite modules run with
  ``pytest ... --endpoint PROXY --row ROW``. The conforming runs (``--repeat``, all suites, no
  proxy) use the same launch first.
* ``launch``: a one-row matrix derived from the entry's row (arguments dropped or set, env, a chat
  template variant written to a temp dir) and ``pytest <modules> --matrix TMP -m cpu``: the plugin
  launches the misconfigured engine, as in a real run.

Each entry may name the ``checks`` (suite functions) that must fail; the run is then narrowed to
them (``-k``). An entry's ``row`` may be a list: it then runs once per row (ids after the first get
``@ROW``), which is how the defects that apply to SGLang run against the SGLang reference too.
Over the whole catalogue, coverage is proven per engine (the coverage lines under the table):

* vLLM: every check function of every suite the vLLM reference rows serve must be seen failing
  under some fault run on a vLLM row;
* SGLang: every check function that ran (passed) in the conforming run of ``reference-sglang``
  must be seen failing under some fault run on an SGLang row: so each check's SGLang branch
  (``reasoning_content``, fall-through decided by behaviour, prompt tokens from ``usage``) is
  proven able to fail there, not only on vLLM.

A check no fault can fail is reported, and fails the run.

Results go to ``--results DIR`` (default ``results/faults-<UTC time>/``): one sub-directory per run
(``matrix.json``, ``pytest.log``, engine logs), plus ``faults.json`` and ``faults.md`` (the table).
``python -m glmverify.faults record --endpoint URL`` re-records the engine answers that
tests/test_faults.py replays through the proxy's rewrites.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
import yaml

from .matrix import FEATURES, flat_document, load
from .paths import DEFAULT_MATRIX, REPO_ROOT

CATALOGUE = REPO_ROOT / "fixtures" / "faults.yaml"
RECORDINGS = REPO_ROOT / "fixtures" / "faultproxy_recordings.jsonl.gz"
SUITES = REPO_ROOT / "suites"
TEMPLATE = Path(__file__).resolve().parent / "standin" / "chat_template.jinja"
KINDS = ("proxy", "standin", "launch")
REFERENCE_ROWS = ("reference", "reference-ngram", "reference-sglang")  # conforming engines: runs, coverage
#: coverage is proven per engine: which reference rows stand for which engine
COVERAGE_ROWS = {"vllm": ("reference", "reference-ngram"), "sglang": ("reference-sglang",)}
CASE_KEYS = {"id", "kind", "row", "suites", "expect_failed", "checks", "fault", "standin", "drop_args", "set_args",
             "env", "chat_template", "select", "source", "why"}
DEFAULT_TIMEOUT = 1800.0


class CatalogueError(ValueError):
    pass


@dataclass
class FaultCase:
    id: str
    kind: str
    row: str
    suites: list[str]
    expect_failed: list[str]
    fault: str | None = None
    standin: str | None = None
    drop_args: list[str] = field(default_factory=list)
    set_args: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    chat_template: str | None = None
    checks: list[str] = field(default_factory=list)  # suite functions that must fail (the run is narrowed to them)
    select: str | None = None  # a pytest -k expression narrowing the checks run (controls only)
    source: str = ""
    why: str = ""

    @property
    def control(self) -> bool:
        return not self.expect_failed

    def modules(self) -> list[str]:
        return [str(SUITES / f"test_{s}.py") for s in self.suites]


def suite_checks(features) -> dict[str, str]:
    """``feature::function`` -> feature, for every check function (``def test_*``) of the features' suites."""
    import ast

    out = {}
    for feat in features:
        path = SUITES / f"test_{feat}.py"
        if not path.is_file():
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
                out[f"{feat}::{node.name}"] = feat
    return out


# ---- chat template variants ------------------------------------------------------------------------
_EFFORT_LINE = re.compile(r"\{%- if ns\.think_on -%\}\n<\|system\|>Reasoning Effort:[^\n]*\n\{%- endif -%\}\n")
_THINK_SWITCH = "enable_thinking is defined and enable_thinking is not none and not enable_thinking"
_HIGH_TEST = "reasoning_effort == 'high')"


def template_variant(name: str, text: str | None = None) -> str:
    """The stand-in's chat template with one defect (fails loudly if the template changed shape)."""
    text = TEMPLATE.read_text() if text is None else text
    if name == "no_effort_line":
        new = _EFFORT_LINE.sub("", text, count=1)
    elif name == "reads_thinking":
        new = text.replace(_THINK_SWITCH, "thinking is defined and thinking is not none and not thinking", 1)
    elif name == "low_is_high":  # GLM-5.3's low|high|max reading on a GLM-5.2 deployment: low lowers effort
        new = text.replace(_HIGH_TEST, "reasoning_effort in ('high', 'low'))", 1)
    else:
        raise CatalogueError(f"unknown chat_template variant {name!r} ({', '.join(TEMPLATES)})")
    if new == text:
        raise CatalogueError(f"chat_template variant {name!r}: {TEMPLATE.name} no longer has the expected text")
    return new


TEMPLATES = ("no_effort_line", "reads_thinking", "low_is_high")


# ---- catalogue ---------------------------------------------------------------------------------------
def load_catalogue(path: Path | str = CATALOGUE, matrix_path: Path | str = DEFAULT_MATRIX) -> list[FaultCase]:
    """Read and check the catalogue: unique ids, known kinds/rows/features/faults, suites that exist."""
    from .faultproxy import FAULTS
    from .standin.script import FAULTS as STANDIN_FAULTS

    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, list):
        raise CatalogueError(f"{path}: expected a list of faults")
    rows = {r.id for r in load(matrix_path).rows}
    errors, cases, seen = [], [], set()
    for i, d in enumerate(data):
        where = f"{path}[{i}]" + (f" ({d.get('id')})" if isinstance(d, dict) else "")
        if not isinstance(d, dict):
            errors.append(f"{where}: not a mapping")
            continue
        unknown = set(d) - CASE_KEYS
        missing = {"id", "kind", "row", "suites", "expect_failed"} - set(d)
        if unknown or missing:
            errors.append(f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
            continue
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", str(d["id"])) or d["id"] in seen:
            errors.append(f"{where}: id must be unique, lowercase words joined by '-'")
        seen.add(d["id"])
        row_ids = d["row"] if isinstance(d["row"], list) else [d["row"]]
        if not row_ids or len(set(row_ids)) != len(row_ids):
            errors.append(f"{where}: row must be a row id or a list of distinct row ids")
            continue
        for n, rid in enumerate(row_ids):  # one case per row: the first keeps the id
            errors += _check_case(FaultCase(**{**d, "id": d["id"] if n == 0 else f"{d['id']}@{rid}", "row": rid}),
                                  where, rows, matrix_path, FAULTS, STANDIN_FAULTS, cases)
    if errors:
        raise CatalogueError("\n".join(errors))
    return cases


def _check_case(case: FaultCase, where: str, rows: set[str], matrix_path, FAULTS, STANDIN_FAULTS,
                cases: list[FaultCase]) -> list[str]:
    """One case's errors (it is appended to ``cases`` either way: errors stop the load later)."""
    errors: list[str] = []
    if case.kind not in KINDS:
        errors.append(f"{where}: kind {case.kind!r} not one of {KINDS}")
    if case.row not in rows:
        errors.append(f"{where}: row {case.row!r} not in {matrix_path}")
    for feat in case.suites + case.expect_failed:
        if feat not in FEATURES:
            errors.append(f"{where}: unknown feature {feat!r}")
    for m in case.modules():
        if not Path(m).is_file():
            errors.append(f"{where}: no suite module {Path(m).name}")
    if not set(case.expect_failed) <= set(case.suites):
        errors.append(f"{where}: expect_failed {case.expect_failed} not all among suites {case.suites}")
    if case.kind == "proxy" and case.fault not in FAULTS:
        errors.append(f"{where}: unknown proxy fault {case.fault!r}")
    if case.kind == "standin" and case.standin not in STANDIN_FAULTS:
        errors.append(f"{where}: unknown stand-in fault {case.standin!r} (one of {sorted(STANDIN_FAULTS)})")
    if case.kind == "launch" and not (case.drop_args or case.set_args or case.env or case.chat_template):
        errors.append(f"{where}: a launch fault must change something (drop_args, set_args, env, chat_template)")
    if case.select and case.expect_failed:
        errors.append(f"{where}: select is for controls only (a fault names its checks instead)")
    if case.checks:
        known = {k.split("::")[1] for k in suite_checks(case.suites)}
        if not case.expect_failed:
            errors.append(f"{where}: checks are for faults (what must fail); a control narrows with select")
        for name in case.checks:
            if name not in known:
                errors.append(f"{where}: no check {name!r} in the suites {case.suites}")
    if case.chat_template is not None and case.chat_template not in TEMPLATES:
        errors.append(f"{where}: unknown chat_template {case.chat_template!r} ({', '.join(TEMPLATES)})")
    cases.append(case)
    return errors


# ---- misconfigured launches --------------------------------------------------------------------------
def derive_args(args: list[str], drop: list[str] = (), set_: dict[str, str] | None = None) -> list[str]:
    """Remove flags ``drop`` (and their value, when the next item is not a flag), then set ``set_``."""
    out: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        name = a.split("=", 1)[0]
        if name in drop:
            takes_value = "=" not in a and i + 1 < len(args) and not str(args[i + 1]).startswith("--")
            i += 2 if takes_value else 1
            continue
        out.append(a)
        i += 1
    for flag, value in (set_ or {}).items():
        if flag in out:
            out[out.index(flag) + 1] = str(value)
        else:
            out += [flag, str(value)]
    return out


def launch_row_id(case: FaultCase) -> str:
    """The derived one-row matrix's row id (matrix ids have no '@')."""
    return case.id.replace("@", ".")


def derived_matrix(case: FaultCase, workdir: Path, matrix_path: Path | str = DEFAULT_MATRIX,
                   standin_env: str | None = None) -> Path:
    """A one-row matrix.yaml for a misconfigured launch of ``case.row``; returns its path."""
    data = flat_document(matrix_path)
    row = next(r for r in data["rows"] if r["id"] == case.row)
    launch = dict(row["launch"])
    launch["args"] = derive_args(list(launch.get("args", [])), case.drop_args, case.set_args)
    env = {**launch.get("env", {}), **case.env}
    if standin_env:
        env["GLM_STANDIN_FAULTS"] = standin_env
    launch["env"] = env
    if case.chat_template:
        tpl = workdir / f"chat_template.{case.chat_template}.jinja"
        tpl.write_text(template_variant(case.chat_template))
        launch["args"] = derive_args(launch["args"], ["--chat-template"], {"--chat-template": str(tpl)})
    row = {**row, "id": launch_row_id(case), "launch": launch,
           "description": f"fault catalogue: {case.id} (row {case.row} misconfigured)"}
    out = {k: data[k] for k in ("schema", "features", "profiles")}
    out["rows"] = [row]
    path = workdir / "matrix.yaml"
    path.write_text(yaml.safe_dump(out, sort_keys=False, allow_unicode=True))
    return path


# ---- running pytest ------------------------------------------------------------------------------------
_CHILDREN: set[subprocess.Popen] = set()
_CHILDREN_LOCK = threading.Lock()


def _terminate(proc: subprocess.Popen) -> None:
    """SIGTERM to a pytest run's process group (pytest stops the engine it launched), then SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    except ProcessLookupError:
        pass


def _stop_children() -> None:
    with _CHILDREN_LOCK:
        procs = list(_CHILDREN)
    with cf.ThreadPoolExecutor(max(1, len(procs))) as pool:
        list(pool.map(_terminate, procs))


def run_pytest(args: list[str], out_dir: Path, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, float]:
    """``python -m pytest ARGS --results OUT_DIR`` from the repo root; (exit code, seconds)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pytest", *args, "--results", str(out_dir), "-p", "no:cacheprovider", "-q",
           "-rfE", "--tb=line", "-W", "ignore"]
    t0 = time.monotonic()
    with open(out_dir / "pytest.log", "w") as log:
        log.write(" ".join(cmd) + "\n\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        with _CHILDREN_LOCK:
            _CHILDREN.add(proc)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _terminate(proc)
            rc = proc.returncode
            log.write(f"\nglmverify.faults: killed after {timeout:.0f}s\n")
        except BaseException:  # interrupted: the run (and the engine it launched) goes too
            _terminate(proc)
            raise
        finally:
            with _CHILDREN_LOCK:
                _CHILDREN.discard(proc)
    return rc, time.monotonic() - t0


def observe(results_dir: Path, row: str) -> dict[str, dict]:
    """Per feature of ``row`` in DIR/matrix.json: status and the first failing check's detail."""
    try:
        doc = json.loads((results_dir / "matrix.json").read_text())
    except (OSError, ValueError) as exc:
        return {"_error": {"status": "no matrix.json", "detail": str(exc)}}
    out = {}
    for c in doc.get("cells", []):
        if c.get("row") != row:
            continue
        bad = [k for k in c.get("checks", []) if k.get("outcome") in ("failed", "error")]
        detail = ""
        if bad:
            detail = f"{bad[0]['id']}: {bad[0].get('detail', '')}"
        out[c["feature"]] = {"status": c["status"], "detail": " ".join(detail.split())[:400],
                             "checks": len(c.get("checks", [])),
                             "failed": sorted({f"{c['feature']}::{k['id'].split('[')[0]}" for k in bad}),
                             "passed": sorted({f"{c['feature']}::{k['id'].split('[')[0]}" for k in c.get("checks", [])
                                               if k.get("outcome") == "passed"})}
    return out


@dataclass
class Outcome:
    id: str
    kind: str
    row: str
    expect_failed: list[str]
    observed: dict[str, str] = field(default_factory=dict)
    detected: bool = False
    seconds: float = 0.0
    detail: str = ""
    exit_code: int | None = None
    mutated: str = ""
    results: str = ""
    failed_checks: list[str] = field(default_factory=list)  # feature::function seen failing
    passed_checks: list[str] = field(default_factory=list)  # feature::function seen passing

    @property
    def verdict(self) -> str:
        if not self.expect_failed:  # a control or a conforming run: nothing may fail
            return "pass" if self.detected else "FAIL"
        return "yes" if self.detected else "NO"

    @property
    def word(self) -> str:
        return {"yes": "detected", "NO": "NOT DETECTED", "pass": "passed (nothing failed)", "FAIL": "FAILED"}[self.verdict]


def judge(case_id: str, kind: str, row: str, expect_failed: list[str], features: list[str], seen: dict[str, dict],
          rc: int, seconds: float, results: Path, checks: list[str] = ()) -> Outcome:
    """Detected: every expected feature ``failed`` (and every named check among the failing ones). A
    control or conforming run: no feature failed and every feature run has a live status (verified,
    or unsupported/skipped by the row)."""
    observed = {f: seen.get(f, {}).get("status", "absent") for f in features}
    failed = sorted({k for f in features for k in seen.get(f, {}).get("failed", [])})
    passed = sorted({k for f in features for k in seen.get(f, {}).get("passed", [])})
    if expect_failed:
        missing = [c for c in checks if not any(k.endswith("::" + c) for k in failed)]
        detected = all(observed.get(f) == "failed" for f in expect_failed) and not missing
        detail = next((seen[f]["detail"] for f in expect_failed if seen.get(f, {}).get("detail")), "")
        if missing:
            detail = f"named checks did not fail: {missing}; " + detail
    else:
        detected = bool(observed) and all(s in ("verified", "unsupported") for s in observed.values())
        detail = next((f"{f}: {seen[f]['detail']}" for f in features if seen.get(f, {}).get("detail")), "")
    if "_error" in seen:
        detail = f"{seen['_error']['status']}: {seen['_error']['detail']}"
    return Outcome(case_id, kind, row, list(expect_failed), observed, detected, round(seconds, 1), detail, rc,
                   results=str(results), failed_checks=failed, passed_checks=passed)


# ---- the runner -------------------------------------------------------------------------------------------
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
    if case.select:
        args += ["-k", case.select]
    if case.checks:
        args += ["-k", " or ".join(case.checks)]
    # stop at the first failure when that cannot hide an expected one (one feature expected, only it
    # run, at most one named check)
    if opts.stop_early and len(case.expect_failed) == 1 and case.suites == case.expect_failed and len(case.checks) <= 1:
        args.append("-x")
    return args


def conforming_suites(row) -> list[str]:
    return [f for f in FEATURES if row.serves(f)]


def run_conforming(row, url: str, n: int, opts: RunOptions) -> Outcome:
    features = conforming_suites(row)
    out_dir = opts.results / f"conforming-{row.id}-{n}"
    _progress(f"conforming run {n} on {row.id}: {', '.join(features)}")
    rc, secs = run_pytest([*[str(SUITES / f"test_{f}.py") for f in features], "--endpoint", url, "--row", row.id,
                           "--matrix", str(opts.matrix), "--request-timeout", "600"], out_dir, opts.timeout)
    o = judge(f"conforming-{row.id}-{n}", "conforming", row.id, [], features, observe(out_dir, row.id), rc, secs, out_dir)
    _progress(f"conforming run {n} on {row.id}: {'ok' if o.detected else 'FAILURES'} in {secs:.0f}s")
    return o


def run_proxy_case(case: FaultCase, upstream: str, opts: RunOptions) -> Outcome:
    from .faultproxy import FAULTS, Fault, FaultProxy, standin_request

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
        _stop_children()  # the worker threads wait on these runs
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_catalogue(cases: list[FaultCase], opts: RunOptions) -> list[Outcome]:
    from .session import Options, start_engine

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


# ---- the table ---------------------------------------------------------------------------------------------
def table(outcomes: list[Outcome]) -> str:
    head = ("fault", "kind", "expected failed", "observed", "detected", "s", "mutated", "evidence (first failing check)")
    rows = []
    for o in outcomes:
        expected = ", ".join(o.expect_failed) or "(none)"
        observed = ", ".join(f"{f}={s}" for f, s in o.observed.items()) or "-"
        if not o.expect_failed and o.observed and set(o.observed.values()) == {"verified"}:
            observed = f"all {len(o.observed)} verified"  # a conforming run's features, in one word
        verdict = o.verdict
        rows.append((o.id, o.kind, expected, observed, verdict, f"{o.seconds:.0f}", o.mutated or "-", o.detail[:110]))
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head) - 1)]
    lines = []
    for r in [head, tuple("-" * w for w in widths) + ("-" * 30,), *rows]:
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(r, widths)) + "  " + str(r[-1]))
    return "\n".join(lines)


def markdown(outcomes: list[Outcome]) -> str:
    def esc(s):
        return str(s).replace("|", "\\|").replace("\n", " ")
    lines = ["| fault | kind | expected failed | observed | detected | seconds | evidence |", "|---|---|---|---|---|---|---|"]
    for o in outcomes:
        verdict = o.verdict
        lines.append(f"| {esc(o.id)} | {o.kind} | {esc(', '.join(o.expect_failed) or '(none)')} | "
                     f"{esc(', '.join(f'{f}={s}' for f, s in o.observed.items()))} | {verdict} | {o.seconds:.0f} | "
                     f"{esc(o.detail[:200])} |")
    return "\n".join(lines) + "\n"


def coverage(outcomes: list[Outcome], features, rows=None) -> dict[str, list[str]]:
    """``feature::function`` of every check of ``features`` -> the detected faults seen failing it
    (only faults run on ``rows``, when given)."""
    cov: dict[str, list[str]] = {k: [] for k in suite_checks(features)}
    for o in outcomes:
        if o.expect_failed and o.detected and (rows is None or o.row in rows):
            for k in o.failed_checks:
                if k in cov:
                    cov[k].append(o.id)
    return cov


def engine_coverage(outcomes: list[Outcome], matrix, selected: set[str] | None = None) -> dict[str, list[str]]:
    """Coverage per engine, keyed ``ENGINE: feature::function`` (see the module docstring): vLLM over
    every check of the suites its reference rows serve; SGLang over the checks its conforming run
    ran (a check the engine cannot run, e.g. the rendered-prompt one, has no SGLang branch).
    ``selected``: only these reference rows (``--row``), and only the engines they stand for."""
    out: dict[str, list[str]] = {}
    for engine, rows in COVERAGE_ROWS.items():
        rows = [r for r in rows if r in {x.id for x in matrix.rows} and (selected is None or r in selected)]
        if not rows:
            continue
        served = [f for f in FEATURES if any(f in conforming_suites(matrix.row(r)) for r in rows)]
        cov = coverage(outcomes, served, set(rows))
        if engine != "vllm":
            ran = {k for o in outcomes if o.kind == "conforming" and o.row in rows for k in o.passed_checks}
            cov = {k: v for k, v in cov.items() if k in ran} or {f"{engine} conforming run": []}
        out.update({f"{engine}: {k}": v for k, v in cov.items()})
    return out


def coverage_text(cov: dict[str, list[str]]) -> str:
    width = max((len(k) for k in cov), default=10)
    return "\n".join(f"{k.ljust(width)}  {', '.join(v) if v else 'NEVER SEEN FAILING'}" for k, v in cov.items())


def summary(outcomes: list[Outcome], cov: dict[str, list[str]] | None = None) -> tuple[bool, str]:
    """Every fault detected, every control and conforming run passing, and (given ``cov``) every
    check seen failing under some fault."""
    faults = [o for o in outcomes if o.expect_failed]
    controls = [o for o in outcomes if not o.expect_failed]
    found = sum(o.detected for o in faults)
    ok_controls = sum(o.detected for o in controls)
    ok = found == len(faults) and ok_controls == len(controls)
    pct = 100.0 * found / len(faults) if faults else 100.0
    line = (f"faults detected: {found}/{len(faults)} ({pct:.0f}%); controls and conforming runs passing: "
            f"{ok_controls}/{len(controls)}")
    if cov is not None:
        shown = sum(bool(v) for v in cov.values())
        ok = ok and shown == len(cov)
        line += f"; checks seen failing: {shown}/{len(cov)}"
    return ok, line


# ---- recordings for tests/test_faults.py ----------------------------------------------------------------
def record(endpoint: str, out: Path = RECORDINGS, what: tuple[str, ...] = ("chat", "messages")) -> Path:
    """Record the engine answers the proxy's rewrites are unit-tested on (gzip JSONL, merged by id).

    ``chat``/``messages`` from row reference; ``metrics`` (spec-decode counters before and after a
    small workload) from row reference-ngram.
    """
    import httpx

    tools = json.loads((SUITES / "cases" / "tools.json").read_text())
    base = endpoint.rstrip("/")
    items = []
    with httpx.Client(timeout=600) as h:
        model = h.get(base + "/v1/models").json()["data"][0]["id"]
        chat = {
            "reasoning": {"messages": [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
                          "reasoning_effort": "high"},
            "tools": {"messages": [{"role": "user", "content": "Call get_weather for city Tokyo and days 2, and also call get_time."}],
                      "tools": [tools["get_weather"], tools["get_time"]], "tool_choice": "auto", "reasoning_effort": "high"},
            "exact_string": {"messages": [{"role": "user", "content": 'Call write_note with text="  two leading spaces  " (a JSON string: keep it exactly).'}],
                             "tools": [tools["write_note"]], "tool_choice": "auto", "reasoning_effort": "high"},
        }
        msgs = {
            "thinking": {"messages": [{"role": "user", "content": "What is the capital of Italy? One word."}]},
            "tool_use": {"messages": [{"role": "user", "content": "Call get_weather for city Tokyo and days 2, and also call get_time."}],
                         "tools": [{"name": t["function"]["name"], "description": t["function"]["description"],
                                    "input_schema": t["function"]["parameters"]} for t in (tools["get_weather"], tools["get_time"])]},
        }
        if "chat" in what:
            for name, req in chat.items():
                for stream in (False, True):
                    body = {"model": model, "max_tokens": 1024, "temperature": 0, **req}
                    if stream:
                        body.update(stream=True, stream_options={"include_usage": True})
                    r = h.post(base + "/v1/chat/completions", json=body)
                    items.append({"id": f"chat-{name}-{'stream' if stream else 'nonstream'}", "kind": "chat", "stream": stream,
                                  "request": body, "status": r.status_code, "body": r.text})
        if "messages" in what:
            for name, req in msgs.items():
                for stream in (False, True):
                    body = {"model": model, "max_tokens": 1024, **req, **({"stream": True} if stream else {})}
                    r = h.post(base + "/v1/messages", json=body)
                    items.append({"id": f"messages-{name}-{'stream' if stream else 'nonstream'}", "kind": "messages",
                                  "stream": stream, "request": body, "status": r.status_code, "body": r.text})
        if "metrics" in what:
            def spec(text: str) -> str:
                return "\n".join(ln for ln in text.splitlines() if "spec_decode" in ln) + "\n"
            before = h.get(base + "/metrics").text
            for _ in range(4):  # decode-heavy, as suites/test_mtp_accept_length.py
                h.post(base + "/v1/chat/completions", json={"model": model, "max_tokens": 256, "ignore_eos": True, "messages": [
                    {"role": "user", "content": "Count from one to forty in words, separated by commas."}]})
            after = h.get(base + "/metrics").text
            if "spec_decode" not in after:
                raise RuntimeError(f"{endpoint} publishes no spec_decode counters: record metrics from row reference-ngram")
            for rid, text in (("metrics-before", before), ("metrics", after)):
                items.append({"id": rid, "kind": "metrics", "stream": False, "request": None, "status": 200, "body": spec(text)})
    merged = {d["id"]: d for d in load_recordings(out)} if out.exists() else {}
    merged.update({it["id"]: it for it in items})
    with gzip.open(out, "wt", encoding="utf-8") as f:
        for it in merged.values():
            f.write(json.dumps(it, ensure_ascii=False) + "\n")
    return out


def load_recordings(path: Path = RECORDINGS) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ---- command line ------------------------------------------------------------------------------------------
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
    if only:
        unknown = [p for p in only if not p.endswith("*") and p not in {c.id for c in cases}]
        if unknown:
            ap.error(f"--only: no such fault(s) {unknown}")
        cases = [c for c in cases if any(c.id == p or (p.endswith("*") and c.id.startswith(p[:-1])) for p in only)]
    if a.kind:
        cases = [c for c in cases if c.kind in a.kind]
    if a.row:
        cases = [c for c in cases if c.row in a.row]
    if a.list:
        for c in cases:
            print(f"{c.id:40s} {c.kind:8s} {c.row:16s} {','.join(c.expect_failed) or '(control)':35s} {c.why}")
        return 0
    # the whole catalogue: conforming runs and check coverage belong to it, not to a selection
    whole = not only and not a.kind
    results = a.results or REPO_ROOT / "results" / ("faults-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"))
    opts = RunOptions(results=results.resolve(), repeat=a.repeat, conforming=not a.no_conforming and whole,
                      jobs=a.jobs, accuracy_samples=a.accuracy_samples, standin_via=a.standin_via, timeout=a.timeout,
                      matrix=a.matrix.resolve(), stop_early=not a.full, endpoints=endpoints,
                      conforming_rows=tuple(a.row) or REFERENCE_ROWS)
    opts.results.mkdir(parents=True, exist_ok=True)
    from .engines import install_signal_cleanup

    install_signal_cleanup()  # SIGTERM: stop our engine, then the pytest runs (below)
    t0 = time.monotonic()
    try:
        outcomes = run_catalogue(cases, opts)
    except KeyboardInterrupt:
        print("glmverify.faults: interrupted", file=sys.stderr)
        return 130
    finally:
        _stop_children()
    total = time.monotonic() - t0
    matrix = load(opts.matrix)
    cov = engine_coverage(outcomes, matrix, set(a.row) or None) if whole else None
    ok, line = summary(outcomes, cov)
    text = table(outcomes) + ("\n\nchecks and the faults seen failing them:\n" + coverage_text(cov) if cov else "")
    (opts.results / "faults.json").write_text(json.dumps(
        {"ok": ok, "seconds": round(total, 1), "summary": line, "outcomes": [asdict(o) for o in outcomes],
         "coverage": cov}, indent=1) + "\n")
    cov_md = ("\n| check | faults seen failing it |\n|---|---|\n"
              + "".join(f"| {k} | {', '.join(v) or '**never**'} |\n" for k, v in cov.items())) if cov else ""
    (opts.results / "faults.md").write_text(markdown(outcomes) + cov_md + f"\n{line}; total {total / 60:.1f} min\n")
    print()
    print(text)
    print()
    print(f"{line}; total {total / 60:.1f} min; results in {opts.results}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
