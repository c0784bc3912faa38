"""pytest plugin: wiring only. It registers options, markers and fixtures, and translates hooks
into calls of plain modules, like pytest's own ``stepwise`` plugin:

* options -> ``plugin_options`` (the option table) -> ``options.Options``, validated by
  ``options.validate`` (shared with the CLI);
* rows and features of the run -> ``eligibility`` (``run_rows``, ``feature_skip``, ``launch_gate``);
  every test that uses the ``engine`` fixture is parametrized over those rows, each param marked
  with the row's hardware marker (``pytest -m h200``) and an ``xdist_group`` (``--dist
  loadgroup`` keeps a row on one worker, so its engine launches once; rows sharing
  ``launch.xdist_group`` run one after the other on one worker);
* ``engine`` is session-scoped: one launch per row per run (``session.start_engine``);
* ``--plan`` -> ``plan.plan_text`` of the collected rows, then the session ends (``glmverify
  plan`` prints the same without pytest);
* each suite check's body runs inside a ledger (``ledger``): every answer its chats and
  ``/v1/messages`` streams got is judged against the engine invariants (``invariants``) when the
  body ends, and a violation fails the check even when its own assertions passed;
* each check's outcome -> a ``results.CheckRecord`` (its id from ``item.callspec``: the test's
  name and every parameter's id but the row's; its evidence's ``check_kind``: ``behaviour`` for a
  ``@pytest.mark.behaviour`` check, else ``invariant``), sent as ``user_properties`` to the
  controller, where one registered ``ResultsRecorderPlugin`` feeds the ``results.Recorder`` and
  writes the reports at the end; ``XdistBridge`` hands the run id and results directory to workers;
* the exit status: at the end of a run that recorded anything, ``document.decide_run`` of the final
  document decides it (0 verified, 1 failed, 6 undecided: inconclusive, gate-skipped, not reached;
  see ``document``); the plugin only replaces pytest's 0 with it and prints the undecided and
  failed cells with why in the terminal summary. The checks a run selected per cell (what "not
  reached" is measured against) come from the collection, on each xdist worker under xdist.
"""
from __future__ import annotations

import sys
import time

import pytest

from . import hardware
from .adapters import adapter_for_row
from .checks import Failure, Inconclusive, coded, failure_detail
from .document import counts, decide_run
from .eligibility import EligibilityError, feature_skip, launch_gate, run_rows
from .engines import EngineStartupError, install_signal_cleanup
from .invariants import GLM_SPECIAL_TOKENS
from .ledger import CONTENT_CODES, Ledger, ledger_scope
from .matrix import FEATURES, Matrix, MatrixError, load
from .options import OptionError, Options
from .plugin_options import add_options, options_from
from .redact import REDACT
from .results import PARSER_PROPERTY, PROPERTY_KEY, CheckRecord, Recorder
from .session import LiveEngine, point_latest, run_info, start_engine
from .util import new_run_id, utcnow

STATE_KEY = pytest.StashKey["RunState"]()
MAX_SUMMARY_LINES = 40
EVIDENCE_KEY = pytest.StashKey["Evidence"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def _options(config: pytest.Config, run_id: str) -> Options:
    try:
        return options_from(config, run_id)
    except OptionError as exc:
        raise pytest.UsageError(str(exc)) from None


class RunState:
    """Per-process state: the matrix, the options, and the engines this process launched."""

    def __init__(self, config: pytest.Config, matrix: Matrix, opts: Options, run_id: str):
        self.config = config
        self.matrix = matrix
        self.opts = opts
        self.run_id = run_id
        self._rows: list | None = None

    def rows(self):
        if self._rows is None:
            try:
                self._rows = run_rows(self.matrix, self.opts)
            except EligibilityError as exc:
                raise pytest.UsageError(str(exc)) from None
        return self._rows

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
    if not worker:
        recorder = Recorder(matrix, opts.results_dir, run_info(opts, run_id, sys.argv))
        config.pluginmanager.register(ResultsRecorderPlugin(recorder, opts), "glmverify-results")
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(XdistBridge(run_id, opts, recorder), "glmverify-xdist")


class XdistBridge:
    """Controller side of pytest-xdist: hands the run id and results dir to every worker, and
    takes back the checks each worker's collection selected (the controller collects nothing)."""

    def __init__(self, run_id: str, opts: Options, recorder: Recorder):
        self.run_id = run_id
        self.opts = opts
        self.recorder = recorder

    def pytest_configure_node(self, node) -> None:
        node.workerinput["glmverify_run_id"] = self.run_id
        node.workerinput["glmverify_results"] = str(self.opts.results_dir)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        selected = getattr(node, "workeroutput", {}).get(SELECTED_KEY)
        if selected:
            self.recorder.select(selected)


SELECTED_KEY = "glmverify_selected"


def selected_checks(items) -> dict[str, dict[str, list[str]]]:
    """{row: {feature: [check ids]}} of the suite checks among ``items`` (what the run set out to decide)."""
    out: dict[str, dict[str, list[str]]] = {}
    for it in items:
        cs = getattr(it, "callspec", None)
        feature = _feature_of(it)
        if cs is not None and "engine" in cs.params and feature is not None:
            out.setdefault(str(cs.params["engine"]), {}).setdefault(feature, []).append(check_id(it))
    return out


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items) -> None:
    if hasattr(config, "workeroutput"):  # an xdist worker: the controller reads it in pytest_testnodedown
        config.workeroutput[SELECTED_KEY] = selected_checks(items)


class ResultsRecorderPlugin:
    """Controller-only: feeds check records to the recorder (matrix.json) and writes the reports
    (matrix.md, matrix.html, junit.xml) when the session ends."""

    def __init__(self, recorder: Recorder, opts: Options):
        self.recorder = recorder
        self.opts = opts
        self.interrupted = False
        self.active = False
        self.verdict = None  # document.decide_run of the final document (sessionfinish)
        self.exit_status = 0

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
                rec = CheckRecord.from_json(value)
                rec.phase = report.when  # a setup-phase skip is a launch gate: the check never ran
                self.recorder.add(rec)
            elif key == PARSER_PROPERTY and report.when == "call":
                self.activate()
                self.recorder.add_parsers(value)

    def pytest_keyboard_interrupt(self, excinfo) -> None:
        self.interrupted = True

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config, items) -> None:
        self.opts.collect_only = bool(config.option.collectonly)
        rows = [it.callspec.params["engine"] for it in items
                if hasattr(it, "callspec") and "engine" in it.callspec.params and _feature_of(it) is not None]
        self.recorder.select_rows(rows)
        if not self.opts.collect_only:
            self.recorder.select(selected_checks(items))
        if (rows or self.opts.explicit_results) and not self.opts.collect_only:
            self.activate()

    def pytest_sessionfinish(self, session, exitstatus) -> None:
        if not self.active:
            return
        self.verdict = decide_run(self.recorder.document())
        if exitstatus == 0 and self.verdict.exit_code:
            # pytest saw no failed test, but a cell failed (e.g. a parser-conformance finding) or
            # nothing decided it: the run must not read as verified
            session.exitstatus = exitstatus = self.verdict.exit_code
        self.exit_status = int(exitstatus)
        self.recorder.run["interrupted"] = self.interrupted or exitstatus == 2
        self.recorder.run["exit_status"] = int(exitstatus)
        self.recorder.run["verdict"] = self.verdict.to_json()
        doc = self.recorder.write(final=True)
        try:
            from .report import write_reports
            from .signoff import signoff_state

            write_reports(self.recorder.dir, doc, signoff_state(self.recorder.dir))
        except Exception as exc:  # noqa: BLE001 - a report problem must not fail a finished run
            print(f"glmverify: warning: reports not written: {exc}", file=sys.stderr)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.active:
            return
        doc = self.recorder.document()
        terminalreporter.write_sep("-", "glmverify matrix")
        terminalreporter.write_line(
            "cells: " + ", ".join(f"{k} {v}" for k, v in sorted(counts(doc).items()) if v)
            + f"; launches: {doc['run'].get('launches') or {}}"
        )
        terminalreporter.write_line(f"results: {self.recorder.dir / 'matrix.json'}")
        if self.verdict is not None:
            for line in self.verdict.summary(MAX_SUMMARY_LINES, self.exit_status):
                terminalreporter.write_line(line, red=line.startswith("  failed"), yellow=line.startswith("  undecided"))


# ---- collection ------------------------------------------------------------------------------------
def _feature_of(node) -> str | None:
    m = node.get_closest_marker("feature")
    return m.args[0] if m else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    feature = _feature_of(metafunc.definition)
    # only suite checks (a feature marker) run per row: the project's own tests may have a
    # parameter of the same name (the plugin is registered for every run by the root conftest)
    if "engine" not in metafunc.fixturenames or feature is None:
        return
    state: RunState = metafunc.config.stash[STATE_KEY]
    if feature not in FEATURES:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: unknown feature {feature!r}")
    params = []
    for row in state.rows():
        marks = [getattr(pytest.mark, row.hardware), pytest.mark.xdist_group(row.launch.xdist_group or row.id)]
        why = feature_skip(row, feature)
        if why:
            marks.append(pytest.mark.skip(reason=why))
        params.append(pytest.param(row.id, marks=marks, id=row.id))
    metafunc.parametrize("engine", params, indirect=True, scope="session")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config):
    """``--plan``: print the plans of the selected rows and end, before any collection (as
    ``--markers`` does); the rows are the ones ``glmverify plan`` selects, or the endpoint's."""
    if not config.getoption("plan", False):
        return None
    from .plan import MarkerExpressionError, plan_summary, plan_text, select_rows

    try:
        matrix = load(config.getoption("matrix"))
        opts = _options(config, new_run_id())
        selected = {r.id for r in select_rows(matrix, config.getoption("markexpr"))}
        rows = [r for r in run_rows(matrix, opts) if r.id in selected]
    except (MatrixError, MarkerExpressionError, EligibilityError) as exc:
        raise pytest.UsageError(str(exc)) from None
    sys.stdout.write(plan_text(rows) + plan_summary(len(rows)) + "\n")
    return 0


# ---- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def glm_state(request) -> RunState:
    return request.config.stash[STATE_KEY]


@pytest.fixture(scope="session")
def engine(request, glm_state: RunState) -> LiveEngine:
    """The live engine for one matrix row: launched once per row per run, always stopped."""
    row = glm_state.matrix.row(request.param)
    gate = launch_gate(row, glm_state.opts)
    if gate.skip:
        pytest.skip(gate.skip)
    if gate.fail:
        pytest.fail(gate.fail, pytrace=False)
    if glm_state.opts.endpoint:
        glm_state.progress(f"{row.id}: attaching to {glm_state.opts.endpoint}")
    else:
        glm_state.progress(f"{row.id}: starting {row.engine} ({row.image}, launcher {row.launcher})")
    t0 = time.monotonic()
    live = start_engine(row, glm_state.opts, glm_state.opts.results_dir / "logs", glm_state.progress)
    live.evidence["hardware"] = gate.hardware
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
def check_id(item) -> str:
    """The check's id: the test's name and the ids of its parameters except the row, e.g.
    ``test_split[nonstream]`` for ``test_split[reference-nonstream]``. The row is the ``engine``
    entry of ``item.callspec.params``, its id the row id (``pytest_generate_tests``); it is taken
    out as one of the callspec's id parts (one per parametrization, which pytest joins with "-"
    into ``callspec.id``), never cut out of the node id's text, where a row id may also occur
    inside another parameter's id."""
    cs = getattr(item, "callspec", None)
    if cs is None:
        return item.name
    parts = list(cs._idlist)  # pytest < 9 (pinned): CallSpec2 keeps the parts apart
    row = cs.params.get("engine")
    if row is not None and str(row) in parts:
        parts.remove(str(row))
    return item.originalname + (f"[{'-'.join(parts)}]" if parts else "")


def _redact_report(report) -> None:
    """pytest's own failure text and captured output go to terminals, CI logs and JUnit: secrets out."""
    if report.longrepr is not None:
        text = str(report.longrepr)
        clean = REDACT(text)
        if clean != text:
            report.longrepr = clean
    report.sections = [(name, REDACT(body)) for name, body in report.sections]


def check_kind(item) -> str:
    """``behaviour``: a model-behaviour measure decided as a rate (``@pytest.mark.behaviour``);
    every other suite check is an engine invariant."""
    return "behaviour" if item.get_closest_marker("behaviour") else "invariant"


def open_ledger(live) -> Ledger:
    """A check's ledger, with what the row's engine offers to judge answers by: its tokenizer's
    special tokens and a token counter (``adapters``), and the row's context window."""
    # the row's adapter knows a reference row (its stand-in's tokenizer file), where it speaks the
    # API of the engine the client talks to
    row_adapter, profile = adapter_for_row(live.row), live.profile
    adapter = row_adapter if row_adapter.api == live.adapter.api else live.adapter
    try:
        counter = adapter.text_token_counter(live.client, profile)
        specials = adapter.special_tokens(profile)
    except Exception:  # noqa: BLE001 - no tokenizer: the byte bound and the constant list
        counter, specials = None, None
    # the window the server reports (launch evidence), else the row's: a 'length' below max_tokens
    # is conforming only when the context is full
    windows = [live.evidence.get("max_model_len"), (live.row.expect or {}).get("context")]
    window = next((w for w in windows if isinstance(w, int) and w > 0), None)
    # the profile's max_tokens: a request asking for fewer cuts on purpose (degeneration counts it apart)
    ledger = Ledger(specials or GLM_SPECIAL_TOKENS, window, counter, max_tokens=getattr(getattr(live.row, "profile", None), "max_tokens", None))
    unscripted = (live.row.expect or {}).get("unscripted_output")
    if unscripted:
        ledger.waive(CONTENT_CODES, f"the row's model output is unscripted: {unscripted}")
    return ledger


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Every answer the check produced is judged against the engine invariants (``ledger``) when
    its body ends: a violation fails a check that passed, was skipped or inconclusive, naming the
    answer; a check that failed by itself keeps its own failure, the violations go to evidence."""
    live = item.funcargs.get("engine") if hasattr(item, "funcargs") else None
    if _feature_of(item) is None or not isinstance(live, LiveEngine):
        return (yield)
    ledger = open_ledger(live)
    with ledger_scope(ledger):
        try:
            result = yield
        except pytest.skip.Exception:  # skipped or inconclusive: a violation still fails it
            _judge(item, ledger, failed=False)
            raise
        except (Exception, pytest.fail.Exception):
            _judge(item, ledger, failed=True)
            raise
    _judge(item, ledger, failed=False)
    return result


def _judge(item, ledger: Ledger, failed: bool) -> None:
    bad = ledger.check()
    ev = item.stash.setdefault(EVIDENCE_KEY, Evidence())
    ev["invariants"] = ledger.summary(bad)
    if bad and not failed:  # coded by the first violation (``invariants``), every code in the fields
        raise Failure(ledger.failure(bad), bad[0].violations[0].code, codes={v.code for e in bad for v in e.violations})


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
                detail = failure_detail(exc)
            else:
                detail = str(report.longrepr)
        else:
            outcome, detail = "passed", ""
        live = item.funcargs.get("engine") if hasattr(item, "funcargs") else None
        ev = item.stash.get(EVIDENCE_KEY, {})
        rec = CheckRecord(
            row=cs.params["engine"], feature=feature, id=check_id(item), outcome=outcome,
            detail=detail, evidence={**ev, "check_kind": check_kind(item)},
            engine=getattr(live, "evidence", {}) if isinstance(live, LiveEngine) else {},
            launch_id=getattr(live, "launch_id", None) if isinstance(live, LiveEngine) else None,
            time=utcnow(), duration=round(report.duration, 3), **coded(call.excinfo and call.excinfo.value))
        report.user_properties.append((f"{PROPERTY_KEY}.{report.when}", rec.to_json()))
    return report
