"""pytest plugin: registers options, markers, fixtures and the results recorder. Logic lives in
``session`` (rows, engines), ``results`` (cells) and ``plan`` (docker run plans).

* Every test that uses the ``engine`` fixture is parametrized over the matrix rows, each param
  marked with the row's hardware marker (``pytest -m h200``) and an ``xdist_group`` (``--dist
  loadgroup`` keeps a row on one worker, so its engine launches once; rows sharing
  ``launch.xdist_group`` run one after the other on one worker, e.g. two CPU engines that must
  not share two cores).
* ``engine`` is session-scoped: one launch per row per run, whatever the number of checks.
* Each check's outcome travels as ``user_properties`` to the controller, where one
  ``ResultsRecorderPlugin`` writes the matrix.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from . import hardware
from .checks import Inconclusive
from .engines import EngineStartupError, install_signal_cleanup
from .redact import REDACT
from .util import new_run_id, utcnow
from .matrix import FEATURES, Matrix, MatrixError, load
from .paths import DEFAULT_MATRIX
from .results import PARSER_PROPERTY, PROPERTY_KEY, CheckRecord, Recorder
from .session import (LiveEngine, Options, default_results_dir, point_latest,
                      row_for_endpoint, run_info, start_engine)

STATE_KEY = pytest.StashKey["RunState"]()
EVIDENCE_KEY = pytest.StashKey["Evidence"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("glmverify", "GLM-5.2 verification matrix")
    g.addoption("--matrix", default=str(DEFAULT_MATRIX), help="matrix.yaml to verify (validated before anything starts)")
    g.addoption("--endpoint", default=None, metavar="URL",
                help="attach to a running OpenAI-compatible server instead of launching engines")
    g.addoption("--served-model", default=None, help="model name at --endpoint (default: first of /v1/models)")
    g.addoption("--engine", default="auto", choices=["vllm", "sglang", "auto"],
                help="engine kind at --endpoint (auto: probe)")
    g.addoption("--row", default=None, metavar="ID",
                help="the matrix row an --endpoint stands for (default: the row serving its model)")
    g.addoption("--results", default=None, metavar="DIR",
                help="results directory (default results/<UTC timestamp>/, results/latest points at it)")
    g.addoption("--concurrency", type=int, default=64,
                help="requests in flight per suite (default 64: a whole first round of a sequential decision at once)")
    g.addoption("--request-timeout", type=float, default=120.0, help="seconds before one request fails (default 120)")
    g.addoption("--startup-timeout", type=float, default=None,
                help="seconds an engine may take to become healthy (default: the row's, else 3600)")
    g.addoption("--accuracy-samples", type=int, default=64,
                help="GSM8K questions in the first round of the sequential accuracy decision (default 64; 0 = all)")
    g.addoption("--accuracy-max", type=int, default=0,
                help="most GSM8K questions the decision may draw before it ends inconclusive (default 0 = all 1,319)")
    g.addoption("--accuracy-seed", type=int, default=1234, help="seed of the GSM8K sample (same for every row)")
    g.addoption("--gsm8k", default=None, metavar="PATH_OR_URL",
                help="GSM8K test.jsonl (default: ../shared/data/gsm8k/test.jsonl beside the repo)")
    g.addoption("--gsm8k-sha256", default=None, help="expected sha256 of --gsm8k")
    g.addoption("--plan", action="store_true",
                help="print the docker run command of every selected row and exit; launches nothing")


def _options(config: pytest.Config, run_id: str) -> Options:
    def bad(msg: str):
        raise pytest.UsageError(msg)

    endpoint = config.getoption("endpoint")
    if endpoint and not endpoint.startswith(("http://", "https://")):
        bad(f"--endpoint must be an http(s) URL, got {endpoint!r}")
    if config.getoption("concurrency") < 1:
        bad("--concurrency must be at least 1")
    if config.getoption("request_timeout") <= 0:
        bad("--request-timeout must be positive")
    if config.getoption("accuracy_samples") < 0:
        bad("--accuracy-samples must be >= 0")
    if config.getoption("accuracy_max") < 0:
        bad("--accuracy-max must be >= 0")
    results = config.getoption("results")
    if "workerinput" in config.__dict__:
        results = config.workerinput["glmverify_results"]
    results_dir = Path(results) if results else default_results_dir(Path(config.rootpath), run_id)
    return Options(
        matrix_path=Path(config.getoption("matrix")),
        results_dir=results_dir.resolve(),
        endpoint=endpoint,
        served_model=config.getoption("served_model"),
        engine=config.getoption("engine"),
        row=config.getoption("row"),
        concurrency=config.getoption("concurrency"),
        request_timeout=config.getoption("request_timeout"),
        startup_timeout=config.getoption("startup_timeout"),
        accuracy_samples=config.getoption("accuracy_samples"),
        accuracy_max=config.getoption("accuracy_max"),
        accuracy_seed=config.getoption("accuracy_seed"),
        gsm8k=config.getoption("gsm8k"),
        gsm8k_sha256=config.getoption("gsm8k_sha256"),
        plan=config.getoption("plan"),
        explicit_results=bool(config.getoption("results")),
        run_id=run_id,
    )


class RunState:
    """Per-process state: the matrix, the options, and the engines this process launched."""

    def __init__(self, config: pytest.Config, matrix: Matrix, opts: Options, run_id: str):
        self.config = config
        self.matrix = matrix
        self.opts = opts
        self.run_id = run_id
        self._endpoint_row = None

    def rows(self):
        if self.opts.endpoint:
            if self._endpoint_row is None:
                from .client import EngineClient

                try:
                    client = None if self.opts.row else EngineClient(self.opts.endpoint, engine=self.opts.engine)
                    self._endpoint_row = row_for_endpoint(self.matrix, self.opts, client)
                except (ValueError, KeyError) as exc:
                    raise pytest.UsageError(str(exc)) from None
                except Exception as exc:  # noqa: BLE001 - unreachable endpoint is a usage error here
                    raise pytest.UsageError(f"--endpoint {self.opts.endpoint}: cannot probe ({exc}); pass --row ID") from None
            return [self._endpoint_row]
        return list(self.matrix.rows)

    def progress(self, msg: str) -> None:
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        line = f"[glmverify {time.strftime('%H:%M:%S')}] {msg}"
        if tr is None or capman is None:
            print(line, file=sys.stderr, flush=True)
            return
        with capman.global_and_fixture_disabled():
            tr.write_line(line)


def pytest_configure(config: pytest.Config) -> None:
    try:
        matrix = load(config.getoption("matrix"))
    except MatrixError as exc:
        raise pytest.UsageError(str(exc)) from None
    for hw in sorted({r.hardware for r in matrix.rows} | set(hardware.NVIDIA | hardware.ROCM | hardware.ASCEND | {"cpu"})):
        config.addinivalue_line("markers", f"{hw}: matrix rows on {hw} hardware")
    worker = "workerinput" in config.__dict__
    run_id = config.workerinput["glmverify_run_id"] if worker else new_run_id()
    opts = _options(config, run_id)
    state = RunState(config, matrix, opts, run_id)
    config.stash[STATE_KEY] = state
    install_signal_cleanup()
    if opts.plan:
        return
    if not worker:
        recorder = Recorder(matrix, opts.results_dir, run_info(opts, run_id, sys.argv))
        config.pluginmanager.register(ResultsRecorderPlugin(recorder, opts), "glmverify-results")
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(XdistBridge(run_id, opts), "glmverify-xdist")


def session_collect_only(opts: Options) -> bool:
    return getattr(opts, "collect_only", False)


class XdistBridge:
    """Controller side of pytest-xdist: hands the run id and results dir to every worker."""

    def __init__(self, run_id: str, opts: Options):
        self.run_id = run_id
        self.opts = opts

    def pytest_configure_node(self, node) -> None:
        node.workerinput["glmverify_run_id"] = self.run_id
        node.workerinput["glmverify_results"] = str(self.opts.results_dir)


class ResultsRecorderPlugin:
    """Controller-only: turns check records into cells and writes matrix.json/md."""

    def __init__(self, recorder: Recorder, opts: Options):
        self.recorder = recorder
        self.opts = opts
        self.interrupted = False
        self.active = False

    def activate(self) -> None:
        """Results are written only by runs that verify something (not by the project's own tests)."""
        if not self.active:
            self.active = True
            self.recorder.write()  # an empty-but-valid matrix from the start of the run
            point_latest(self.opts.results_dir)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, value in report.user_properties:
            if key == f"{PROPERTY_KEY}.{report.when}":
                self.activate()
                self.recorder.add(CheckRecord.from_json(value))
            elif key == PARSER_PROPERTY and report.when == "call":
                self.activate()
                self.recorder.add_parsers(value)

    def pytest_keyboard_interrupt(self, excinfo) -> None:
        self.interrupted = True

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config, items) -> None:
        self.opts.collect_only = bool(config.option.collectonly)
        rows = [it.callspec.params["engine"] for it in items if hasattr(it, "callspec") and "engine" in it.callspec.params]
        self.recorder.select_rows(rows)
        if (rows or self.opts.explicit_results) and not session_collect_only(self.opts):
            self.activate()

    def pytest_sessionfinish(self, session, exitstatus) -> None:
        if not self.active:
            return
        self.recorder.run["interrupted"] = self.interrupted or exitstatus == 2
        self.recorder.run["exit_status"] = int(exitstatus)
        self.recorder.write(final=True)
        try:
            from .report import write_reports

            write_reports(self.recorder.dir, self.recorder.document())
        except Exception as exc:  # noqa: BLE001 - a report problem must not fail a finished run
            print(f"glmverify: warning: reports not written: {exc}", file=sys.stderr)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.active:
            return
        doc = self.recorder.document()
        counts: dict[str, int] = {}
        for c in doc["cells"]:
            counts[c["status"]] = counts.get(c["status"], 0) + 1
        terminalreporter.write_sep("-", "glmverify matrix")
        terminalreporter.write_line(
            "cells: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            + f"; launches: {doc['run'].get('launches') or {}}"
        )
        terminalreporter.write_line(f"results: {self.recorder.dir / 'matrix.json'}")


# ---- collection ------------------------------------------------------------------------------------
def _feature_of(node) -> str | None:
    m = node.get_closest_marker("feature")
    return m.args[0] if m else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" not in metafunc.fixturenames:
        return
    state: RunState = metafunc.config.stash[STATE_KEY]
    feature = _feature_of(metafunc.definition)
    if feature is not None and feature not in FEATURES:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: unknown feature {feature!r}")
    params = []
    for row in state.rows():
        marks = [getattr(pytest.mark, row.hardware), pytest.mark.xdist_group(row.launch.get("xdist_group") or row.id)]
        if feature and not row.serves(feature):
            marks.append(pytest.mark.skip(reason=f"{row.id}: {feature} unsupported: {row.declared_cell(feature).basis}"))
        params.append(pytest.param(row.id, marks=marks, id=row.id))
    metafunc.parametrize("engine", params, indirect=True, scope="session")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items) -> None:
    state: RunState = config.stash[STATE_KEY]
    if not state.opts.plan:
        return
    from .plan import render_plan

    rows = []
    for it in items:
        rid = getattr(it, "callspec", None) and it.callspec.params.get("engine")
        if rid and rid not in rows:
            rows.append(rid)
    if not rows:  # no suite collected: plan every row the marker expression selects
        expr = config.getoption("markexpr")
        rows = [r.id for r in state.matrix.rows if not expr or r.hardware in expr.split()]
    tr = config.pluginmanager.get_plugin("terminalreporter")
    for rid in rows:
        tr.write_line(render_plan(state.matrix.row(rid)))
        tr.write_line("")
    items.clear()
    pytest.exit(f"plan printed for {len(rows)} row(s); nothing launched", returncode=0)


# ---- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def glm_state(request) -> RunState:
    return request.config.stash[STATE_KEY]


@pytest.fixture(scope="session")
def engine(request, glm_state: RunState) -> LiveEngine:
    """The live engine for one matrix row: launched once per row per run, always stopped."""
    row = glm_state.matrix.row(request.param)
    seen = {"declared_only": True, "why": "attached: the endpoint's hardware is not observable from here"}
    if not glm_state.opts.endpoint:
        if row.launcher == "attach":
            pytest.skip(f"{row.id} is attach-only: run it with --endpoint URL --row {row.id}")
        # identity (model, memory, count), not a device count: an H20 host must not verify an H200 row
        why, seen = hardware.identify(row.hardware, row.accelerators, row.image if row.launcher == "container" else None)
        if why:
            pytest.skip(f"{row.id}: {why}; cells keep their declared status")
        from .flags import refused

        why = refused(row)
        if why:
            pytest.fail(f"{row.id}: not launched: {why}", pytrace=False)
        if row.launcher == "container":
            from .containers import docker_unavailable

            why = docker_unavailable()
            if why:
                pytest.skip(f"{row.id}: {why}")
    if glm_state.opts.endpoint:
        glm_state.progress(f"{row.id}: attaching to {glm_state.opts.endpoint}")
    else:
        glm_state.progress(f"{row.id}: starting {row.engine} ({row.image}, launcher {row.launcher})")
    t0 = time.monotonic()
    live = start_engine(row, glm_state.opts, glm_state.opts.results_dir / "logs", glm_state.progress)
    live.evidence["hardware"] = seen
    glm_state.progress(f"{row.id}: ready in {time.monotonic() - t0:.0f}s (engine {live.evidence.get('engine_version')})")
    try:
        yield live
    finally:
        live.server.stop()
        glm_state.progress(f"{row.id}: stopped")


class Evidence(dict):
    """What a check saw: request, response excerpt, figures. Stored with its outcome."""

    def add(self, **kw) -> None:
        observed = kw.pop("observed", None)
        if observed:  # engine behaviours worth telling GPU rows about (results.Recorder): merged
            self.setdefault("observed", {}).update(observed)
        self.update(kw)


@pytest.fixture
def evidence(request) -> Evidence:
    ev = Evidence()
    request.node.stash[EVIDENCE_KEY] = ev
    return ev


@pytest.fixture(scope="session")
def options(glm_state: RunState) -> Options:
    return glm_state.opts


# ---- turning test outcomes into check records --------------------------------------------------------
def _check_id(item) -> str:
    cs = getattr(item, "callspec", None)
    if cs is None:
        return item.name
    rid = cs.params.get("engine")
    # row ids contain '-' themselves: drop the row id from the param id as a whole
    rest = cs.id.replace(rid, "", 1).strip("-").replace("--", "-") if rid else cs.id
    return item.originalname + (f"[{rest}]" if rest else "")


def _redact_report(report) -> None:
    """pytest's own failure text and captured output go to terminals, CI logs and JUnit: secrets out."""
    if report.longrepr is not None:
        text = str(report.longrepr)
        clean = REDACT(text)
        if clean != text:
            report.longrepr = clean
    report.sections = [(name, REDACT(body)) for name, body in report.sections]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    _redact_report(report)
    cs = getattr(item, "callspec", None)
    feature = _feature_of(item)
    if cs is None or "engine" not in cs.params or feature is None or report.when == "teardown":
        return report
    if report.when == "setup" and report.passed:
        return report
    if report.when == "call" or report.failed or report.skipped:
        if report.skipped:
            outcome = "skipped"
            detail = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
            if call.excinfo is not None and call.excinfo.errisinstance(Inconclusive):
                outcome = "inconclusive"
                detail = detail.removeprefix("Skipped: ")
        elif report.failed:
            outcome = "failed" if report.when == "call" else "error"
            exc = call.excinfo
            if exc is not None and exc.errisinstance(EngineStartupError):
                detail = f"engine failed to start: {exc.value}"
            elif exc is not None:
                detail = exc.exconly()
            else:
                detail = str(report.longrepr)
        else:
            outcome, detail = "passed", ""
        live = item.funcargs.get("engine") if hasattr(item, "funcargs") else None
        ev = item.stash.get(EVIDENCE_KEY, {})
        rec = CheckRecord(
            row=cs.params["engine"], feature=feature, id=_check_id(item), outcome=outcome,
            detail=detail, evidence=dict(ev),
            engine=getattr(live, "evidence", {}) if isinstance(live, LiveEngine) else {},
            launch_id=getattr(live, "launch_id", None) if isinstance(live, LiveEngine) else None,
            time=utcnow(), duration=round(report.duration, 3),
        )
        report.user_properties.append((f"{PROPERTY_KEY}.{report.when}", rec.to_json()))
    return report
