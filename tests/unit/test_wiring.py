"""What the plugin delegates, tested without pytest's machinery: options, eligibility, plan rows,
check ids; and ``glmverify plan`` printing plans without running pytest."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from glmverify.cli import main
from glmverify.eligibility import ATTACHED_HARDWARE, EligibilityError, feature_skip, launch_gate, run_rows
from glmverify.matrix import load
from glmverify.options import OptionError, Options, problems, validate
from glmverify.plan import MarkerExpressionError, plan_text, select_rows
from glmverify.plugin import check_id


@pytest.fixture(scope="module")
def matrix():
    return load()


def opts(**kw) -> Options:
    return Options(matrix_path=Path("matrix.yaml"), results_dir=Path("out"), **kw)


# ---- options ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, message", [
    ({"endpoint": "gpu:8000"}, "--endpoint must be an http(s) URL, got 'gpu:8000'"),
    ({"concurrency": 0}, "--concurrency must be at least 1"),
    ({"request_timeout": 0.0}, "--request-timeout must be positive"),
    ({"accuracy_samples": -1}, "--accuracy-samples must be >= 0"),
    ({"accuracy_max": -5}, "--accuracy-max must be >= 0"),
])
def test_each_bad_option_is_named(kw, message):
    assert problems(opts(**kw)) == [message]
    with pytest.raises(OptionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(opts(**kw))


def test_good_options_pass_and_session_still_exports_options():
    from glmverify import session

    good = opts(endpoint="https://gpu:8000", concurrency=1, accuracy_samples=0)
    assert validate(good) is good and problems(good) == []
    assert session.Options is Options


def test_cli_refuses_the_endpoint_with_the_plugins_words(capsys):
    assert main(["run", "--dry-run", "--endpoint", "gpu:8000"]) == 2
    assert problems(opts(endpoint="gpu:8000"))[0] in capsys.readouterr().err


# ---- eligibility ----------------------------------------------------------------------------------------
def test_rows_of_a_run(matrix):
    assert run_rows(matrix, opts()) == list(matrix.rows)
    assert [r.id for r in run_rows(matrix, opts(endpoint="http://x:1", row="reference"))] == ["reference"]
    served = matrix.row("reference").served_model
    # what adapters.probe reads from a vLLM endpoint: its model list, version and window
    probe = SimpleNamespace(model=None, engine="vllm", facts={}, models=lambda: [{"id": served, "owned_by": "vllm"}],
                            version=lambda paths=(): "0.32.0", max_model_len=lambda: 16384)
    matches = [r.id for r in matrix.rows if r.served_model == served]
    if len(matches) == 1:
        assert [r.id for r in run_rows(matrix, opts(endpoint="http://x:1"), lambda: probe)] == matches
    else:
        with pytest.raises(EligibilityError, match="pass --row ID"):
            run_rows(matrix, opts(endpoint="http://x:1"), lambda: probe)


def test_an_unreachable_endpoint_or_unknown_row_is_a_usage_problem(matrix):
    def unreachable():
        raise ConnectionError("refused")
    with pytest.raises(EligibilityError, match=r"--endpoint http://x:1: cannot probe \(refused\); pass --row ID"):
        run_rows(matrix, opts(endpoint="http://x:1"), unreachable)
    with pytest.raises(EligibilityError, match="no-such-row"):
        run_rows(matrix, opts(endpoint="http://x:1", row="no-such-row"))


def test_feature_skip_names_the_declared_basis(matrix):
    row = next(r for r in matrix.rows if any(c.status == "unsupported" for c in r.declared.values()))
    feature = next(f for f, c in row.declared.items() if c.status == "unsupported")
    assert feature_skip(row, feature) == f"{row.id}: {feature} unsupported: {row.declared_cell(feature).basis}"
    served = next(f for f in matrix.features if row.serves(f))
    assert feature_skip(row, served) is None and feature_skip(row, None) is None


def test_launch_gates(matrix):
    attach = next(r for r in matrix.rows if r.launcher == "attach")
    gate = launch_gate(attach, opts())
    assert gate.skip == f"{attach.id} is attach-only: run it with --endpoint URL --row {attach.id}" and not gate.fail
    attached = launch_gate(attach, opts(endpoint="http://x:1"))
    assert (attached.skip, attached.fail, attached.hardware) == (None, None, ATTACHED_HARDWARE)
    ref = launch_gate(matrix.row("reference"), opts())
    assert (ref.skip, ref.fail) == (None, None) and ref.hardware["vendor"] == "cpu"


# ---- plan rows ------------------------------------------------------------------------------------------
def test_marker_expressions_select_rows_by_hardware(matrix):
    hw = {r.id: r.hardware for r in matrix.rows}
    assert select_rows(matrix) == list(matrix.rows)
    assert {r.hardware for r in select_rows(matrix, "h200")} == {"h200"}
    assert {r.hardware for r in select_rows(matrix, "mi300x or mi355x")} == {"mi300x", "mi355x"}
    assert [r.id for r in select_rows(matrix, "not cpu")] == [i for i, h in hw.items() if h != "cpu"]
    assert [r.id for r in select_rows(matrix, "(cpu or h200) and not h200")] == [i for i, h in hw.items() if h == "cpu"]
    assert select_rows(matrix, "cpu and h200") == []
    for bad in ("cpu or", "(cpu", "cpu h200", "and cpu"):
        with pytest.raises(MarkerExpressionError):
            select_rows(matrix, bad)


def test_glmverify_plan_runs_without_pytest(capsys, monkeypatch, matrix):
    import pytest as pytest_module

    def no_pytest(*a, **kw):
        raise AssertionError("glmverify plan ran pytest")
    monkeypatch.setattr(pytest_module, "main", no_pytest)
    assert main(["plan", "-m", "cpu"]) == 0
    out, err = capsys.readouterr()
    rows = select_rows(matrix, "cpu")
    from glmverify.plan import known_issues_text  # the plans, then each row's known issues

    assert out == plan_text(rows) + known_issues_text(rows) and f"plan printed for {len(rows)} row(s)" in err
    assert main(["plan", "-m", "cpu or"]) == 2
    assert "glmverify: error: -m 'cpu or': ends early" in capsys.readouterr().err


# ---- check ids ------------------------------------------------------------------------------------------
def item(originalname, params, idlist):
    cs = SimpleNamespace(params=params, _idlist=list(idlist), id="-".join(idlist))
    return SimpleNamespace(originalname=originalname, name=f"{originalname}[{cs.id}]", callspec=cs)


@pytest.mark.parametrize("params, idlist, expected", [
    ({"engine": "reference"}, ["reference"], "test_x"),
    ({"engine": "reference", "stream": False}, ["reference", "nonstream"], "test_x[nonstream]"),
    ({"stream": True, "engine": "reference-sglang"}, ["stream", "reference-sglang"], "test_x[stream]"),
    ({"channel": "kwargs", "engine": "vllm-glm52-fp8-h200", "stream": True},
     ["kwargs", "vllm-glm52-fp8-h200", "stream"], "test_x[kwargs-stream]"),
    # a parameter id that contains the row id: the row's part goes, the other stays whole
    ({"case": {}, "engine": "reference"}, ["reference_case", "reference"], "test_x[reference_case]"),
])
def test_check_ids_drop_the_row_part_only(params, idlist, expected):
    assert check_id(item("test_x", params, idlist)) == expected


def test_an_unparametrized_check_is_its_name():
    assert check_id(SimpleNamespace(name="test_plain")) == "test_plain"
