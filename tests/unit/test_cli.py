"""The glmverify command line: help, argument building, bad input (exit 2, message, no traceback)."""
from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from glmverify.cli import main
from glmverify.matrix import load


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def results(tmp_path):
    m = load()
    row, feat = m.rows[0], m.features[0]
    doc = {"schema": 1, "run": {"id": "run-1", "started": "2025-01-01T00:00:00Z", "finished": "2025-01-01T01:00:00Z",
                                "launches": {row.id: 1}},
           "cells": [{"row": row.id, "engine": row.engine, "image": row.image, "hardware": row.hardware,
                      "feature": feat, "status": "verified", "declared": "not_run", "basis": "live run run-1",
                      "checks": [{"id": "test_x", "outcome": "passed", "detail": ""}], "evidence": {}}]}
    d = tmp_path / "run1"
    d.mkdir()
    (d / "matrix.json").write_text(json.dumps(doc))
    return d


# ---- help ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cmd, words", [
    ([], ["typical release flow", "run", "plan", "merge", "report", "signoff"]),
    (["run"], ["--endpoint", "--row", "--results", "-n", "loadgroup", "passed to pytest"]),
    (["plan"], ["Nothing is launched", "-m EXPR"]),
    (["merge"], ["live result", "history", "never hidden", "--out DIR"]),
    (["report"], ["matrix.html", "junit.xml", "never modified"]),
    (["signoff"], ["--by NAME", "--verify", "sha256", "exits 1"]),
])
def test_help_explains_each_command(capsys, cmd, words):
    code, out, err = run_cli(capsys, *cmd, "--help")
    assert code == 0
    for w in words:
        assert w in out, w


def test_no_command_prints_help_and_exits_2(capsys):
    code, out, err = run_cli(capsys)
    assert code == 2 and "COMMAND" in err


# ---- run / plan: the pytest command ---------------------------------------------------------------------
def _dry(capsys, *argv):
    code, out, err = run_cli(capsys, argv[0], "--dry-run", *argv[1:])  # before any "--"
    assert code == 0, err
    return shlex.split(out.strip())[3:]  # drop: python -m pytest


def test_run_builds_the_pytest_command(capsys, tmp_path):
    args = _dry(capsys, "run", "-m", "h200", "-k", "tool", "--results", str(tmp_path / "out"), "-n", "4",
                "--concurrency", "8", "-x", "--", "-p", "no:randomly")
    assert args[0].endswith("suites")
    assert args[1:] == ["-m", "h200", "-k", "tool", f"--results={tmp_path / 'out'}", "-n", "4",
                        "--dist", "loadgroup", "--concurrency", "8", "-x", "-p", "no:randomly"]


def test_run_attached_endpoint_and_explicit_dist(capsys):
    args = _dry(capsys, "run", "--endpoint", "http://gpu:8000", "--row", "vllm-glm52-fp8-h200", "-n", "2",
                "--dist", "load")
    assert args[1:3] == ["--endpoint=http://gpu:8000", "--row=vllm-glm52-fp8-h200"]
    assert args.count("--dist") == 1 and "load" in args


def test_plan_builds_the_pytest_command(capsys):
    args = _dry(capsys, "plan", "-m", "h200")
    assert args[0].endswith("suites") and "--plan" in args
    assert args[args.index("-m") + 1] == "h200"


@pytest.mark.parametrize("argv, message", [
    (["run", "--endpoint", "gpu:8000"], "--endpoint must be an http(s) URL"),
    (["run", "--row", "reference"], "--row needs --endpoint"),
    (["run", "-n", "many"], "-n takes a number of workers"),
    (["run", "--matrix", "no/such/matrix.yaml"], "--matrix no/such/matrix.yaml: no such file"),
    (["run", "--suite", "no/such/suite.py"], "--suite no/such/suite.py: no such file or directory"),
    (["plan", "--matrix", "no/such.yaml"], "--matrix no/such.yaml: no such file"),
])
def test_run_and_plan_bad_input(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv, "--dry-run")
    assert code == 2
    assert f"glmverify: error: {message}" in err


# ---- report -----------------------------------------------------------------------------------------------
def test_report_renders_the_three_files(capsys, results):
    code, out, err = run_cli(capsys, "report", str(results))
    assert code == 0, err
    for name in ("matrix.md", "matrix.html", "junit.xml"):
        assert (results / name).is_file()
    assert "verified 1" in out


def test_report_into_another_directory(capsys, results, tmp_path):
    code, out, err = run_cli(capsys, "report", str(results / "matrix.json"), "--out", str(tmp_path / "pages"))
    assert code == 0, err
    assert (tmp_path / "pages" / "matrix.html").is_file() and not (results / "matrix.html").exists()


@pytest.mark.parametrize("content, message", [
    ('{"schema": 1, "cells": [', "not valid JSON: Expecting value at line 1, column 25"),
    ("", "empty file"),
    ('{"schema": 1, "run": {}, "cells": {}}', "'cells' is missing or not a list"),
    ('{"schema": 7, "cells": []}', "schema is 7"),
])
def test_report_of_a_corrupt_matrix_json_names_file_and_problem(capsys, tmp_path, content, message):
    f = tmp_path / "matrix.json"
    f.write_text(content)
    code, out, err = run_cli(capsys, "report", str(tmp_path))
    assert code == 2
    assert err.startswith(f"glmverify: error: {f}: ")
    assert message in err
    assert "Traceback" not in err


def test_report_of_a_missing_directory(capsys, tmp_path):
    code, out, err = run_cli(capsys, "report", str(tmp_path / "nowhere"))
    assert code == 2 and f"{tmp_path / 'nowhere'}: no such file or directory" in err
    code, out, err = run_cli(capsys, "report", str(tmp_path))
    assert code == 2 and "has no matrix.json" in err


# ---- merge ------------------------------------------------------------------------------------------------
def test_merge_writes_doc_and_reports_and_warns_on_stderr(capsys, results, tmp_path):
    doc = json.loads((results / "matrix.json").read_text())
    doc["run"]["id"] = "run-2"
    doc["cells"].append(dict(doc["cells"][0], row="row-not-in-matrix"))
    other = tmp_path / "run2.json"
    other.write_text(json.dumps(doc))
    out_dir = tmp_path / "merged"
    code, out, err = run_cli(capsys, "merge", str(results), str(other), "--out", str(out_dir))
    assert code == 0, err
    merged = json.loads((out_dir / "matrix.json").read_text())
    assert [s["id"] for s in merged["run"]["sources"]] == ["run-1", "run-2"]
    assert merged["unknown"][0]["row"] == "row-not-in-matrix"
    assert "glmverify: warning: row-not-in-matrix/" in err and "not in matrix.yaml" in err
    for name in ("matrix.md", "matrix.html", "junit.xml"):
        assert (out_dir / name).is_file()
    assert "merged 2 file(s)" in out


@pytest.mark.parametrize("setup, message", [
    ("missing", "no such file or directory"),
    ("corrupt", "not valid JSON"),
    ("out-is-input", "would overwrite the input"),
    ("bad-matrix", "error(s) in the verification matrix"),
])
def test_merge_bad_input(capsys, results, tmp_path, setup, message):
    argv = ["merge", str(results)]
    if setup == "missing":
        argv.append(str(tmp_path / "gone"))
    if setup == "corrupt":
        (tmp_path / "c.json").write_text("{]")
        argv.append(str(tmp_path / "c.json"))
    argv += ["--out", str(results if setup == "out-is-input" else tmp_path / "m")]
    if setup == "bad-matrix":
        (tmp_path / "m.yaml").write_text("schema: 1\nrows: 3\n")
        argv += ["--matrix", str(tmp_path / "m.yaml")]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "m" / "matrix.json").exists()


def test_merge_needs_out(capsys, results):
    code, out, err = run_cli(capsys, "merge", str(results))
    assert code == 2 and "--out" in err


# ---- signoff ----------------------------------------------------------------------------------------------
def test_signoff_then_verify_then_change(capsys, results):
    code, out, err = run_cli(capsys, "signoff", "--by", "Jane Doe", str(results))
    assert code == 0, err
    assert "signed off" in out and (results / "signoff.json").is_file()
    assert "Signed off by **Jane Doe**" in (results / "matrix.md").read_text()
    code, out, err = run_cli(capsys, "signoff", "--verify", str(results))
    assert code == 0 and "sign-off OK" in out
    (results / "matrix.json").write_text((results / "matrix.json").read_text().replace("verified", "failed"))
    code, out, err = run_cli(capsys, "signoff", "--verify", str(results))
    assert code == 1
    assert "sign-off FAILED" in err and "changed after sign-off" in err


@pytest.mark.parametrize("argv, code_expected, message", [
    (["signoff"], 2, "one of the arguments --by --verify is required"),
    (["signoff", "--by", "x", "--verify"], 2, "not allowed with argument"),
    (["signoff", "--by", "  "], 2, "--by needs the signer's name"),
    (["signoff", "--verify", "NOWHERE"], 2, "NOWHERE: no such results directory"),
])
def test_signoff_bad_input(capsys, results, argv, code_expected, message):
    if argv[-1] == "  ":
        argv = argv + [str(results)]
    code, out, err = run_cli(capsys, *argv)
    assert code == code_expected and message in err


def test_signoff_verify_of_an_unsigned_dir_fails(capsys, results):
    code, out, err = run_cli(capsys, "signoff", "--verify", str(results))
    assert code == 1 and "not signed off" in err


def test_signoff_verify_with_a_corrupt_signoff_json(capsys, results):
    (results / "signoff.json").write_text("{")
    code, out, err = run_cli(capsys, "signoff", "--verify", str(results))
    assert code == 2 and "signoff.json: not valid JSON" in err


# ---- the installed command, in its own process -------------------------------------------------------------
def test_console_entry_point_has_no_traceback_on_bad_input(tmp_path):
    f = tmp_path / "matrix.json"
    f.write_text("{corrupt")
    p = subprocess.run([sys.executable, "-m", "glmverify.cli", "report", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.startswith(f"glmverify: error: {f}: not valid JSON")
    assert "Traceback" not in p.stderr
    p = subprocess.run([sys.executable, "-m", "glmverify.cli", "merge", "--help"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and "usage: glmverify merge" in p.stdout


def test_rules_lists_every_decision_with_its_error_rates(capsys):
    from glmverify.cli import main

    assert main(["rules", "reference"]) == 0
    out = capsys.readouterr().out
    # 6 verdicts, the paired (2), drift and batch accuracy decisions (issue #25) and behaviour
    assert "11 statistical decision(s)" in out and "alpha per decision 0.000909" in out
    for name in ("accuracy[think]", "accuracy[nonthink]", "effort[kwargs:high]", "effort[top_level:high]",
                 "non_think[ratio]", "non_think[wrong:thinking]"):
        assert f"\n{name}\n" in out
    assert main(["rules", "reference", "--engine", "sglang"]) == 0
    sglang = capsys.readouterr().out  # SGLang shows the rendered prompt too: fall-through is exact, not a rate
    assert "11 statistical decision(s)" in sglang and "effort[kwargs:low=max]" not in sglang
    assert main(["rules", "no-such-row"]) == 2
    assert "no row 'no-such-row'" in capsys.readouterr().err


def test_signoff_of_a_flaky_cell_needs_accept_flaky_with_a_reason(capsys, results):
    doc = json.loads((results / "matrix.json").read_text())
    c = doc["cells"][0]
    c.update(status="flaky", basis="FLAKY: verified in run run-1 after failing in run run-0",
             flaky={"verified_run": "run-1", "failed_runs": [{"run": "run-0", "time": None, "failed_checks": ["t"]}]})
    (results / "matrix.json").write_text(json.dumps(doc))
    where = f"{c['row']}/{c['feature']}"
    code, out, err = run_cli(capsys, "signoff", "--by", "Jane", str(results))
    assert code == 1 and "not signed" in err and f"--accept-flaky {where}" in err
    assert not (results / "signoff.json").exists()
    code, out, err = run_cli(capsys, "signoff", "--by", "Jane", "--accept-flaky", where, str(results))
    assert code == 2 and "needs --reason" in err
    code, out, err = run_cli(capsys, "signoff", "--by", "Jane", "--accept-flaky", where,
                             "--reason", "run-0 lost its runner mid-check", str(results))
    assert code == 0, err
    assert f"flaky cell {where} accepted by Jane: run-0 lost its runner mid-check" in err
    record = json.loads((results / "signoff.json").read_text())
    assert record["accepted_flaky"][0]["cell"] == where and record["accepted_flaky"][0]["by"] == "Jane"
    assert f"flaky `{where}` accepted by Jane" in (results / "matrix.md").read_text()
