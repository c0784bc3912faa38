"""Structured failures: every failing path of the suites carries a listed code, and a failure's code and
fields reach the results document next to its detail.

The suites are read as source (``ast``): a call of ``expect`` without a code, a ``raise AssertionError``
or a bare ``assert`` in a suite is a failure without a code, which the diagnosis can only read by its
wording. Every suite is scanned (``UNCODED_SUITES`` names any left out, with why).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from glmverify import checks, policy
from glmverify.checks import Failure, coded, conclude, expect
from glmverify.failure_codes import CODES, meaning
from glmverify.faults.recordings import load_recordings
from glmverify.knowledge import load_entries
from glmverify.paths import SUITES_DIR
from glmverify.verdicts import Rule, decide
from helpers.recorded_child import resent_after, run_child

REPO = Path(__file__).resolve().parents[2]
UNCODED_SUITES: set[str] = set()  # suites left out of the scan (none: every suite is coded)
CODED = ("expect", "Failure", "Inconclusive", "conclude")
#: modules whose coded problems (``invariants.Violation``) reach a check through ``no_problems``, the ledger
INVARIANT_MODULES = ("invariants.py", "chat_answers.py", "anthropic_stream.py", "chat.py", "checks.py")


def suites() -> list[Path]:
    return [p for p in sorted(SUITES_DIR.glob("test_*.py")) if p.name not in UNCODED_SUITES]


def _strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def code_literals(path: Path) -> set[str]:
    """The codes a module passes: the code argument of expect / Failure / Inconclusive, conclude's
    ``code=`` (a string, or a function of the decision returning one), a dict of codes named
    ``*_CODES``, and the code of every ``Violation`` / ``V`` / ``_problem``."""
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Call):
            name = n.func.id if isinstance(n.func, ast.Name) else getattr(n.func, "attr", None)
            if name in ("expect",):
                args = n.args[2:3]
            elif name in ("Failure", "Inconclusive", "Violation", "V", "_problem"):
                args = n.args[1:2] if name in ("Failure", "Inconclusive") else n.args[:1]
            else:
                args = []
            for a in args + [k.value for k in n.keywords if k.arg == "code"]:
                out |= {s for s in _strings(a) if "." in s and " " not in s}
        elif isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id.endswith("_CODES") for t in n.targets):
            out |= {s for s in _strings(n.value) if "." in s and " " not in s}
    return out


def uncoded_paths(path: Path) -> list[str]:
    """Failing paths of a suite without a code."""
    bad = []
    for n in ast.walk(ast.parse(path.read_text())):
        where = f"{path.name}:{getattr(n, 'lineno', '?')}"
        if isinstance(n, ast.Assert):
            bad.append(f"{where}: assert statement")
        elif isinstance(n, ast.Raise) and isinstance(n.exc, ast.Call) and getattr(n.exc.func, "id", None) == "AssertionError":
            bad.append(f"{where}: raise AssertionError")
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in CODED:
            has = any(k.arg == "code" for k in n.keywords) or len(n.args) >= (3 if n.func.id == "expect" else 2)
            if n.func.id == "conclude":
                has = any(k.arg == "code" for k in n.keywords)
            if not has:
                bad.append(f"{where}: {n.func.id} without a code")
    return bad


# ---- the catalogue of codes -----------------------------------------------------------------------------
def test_every_failing_path_of_the_suites_has_a_code():
    assert len(suites()) >= 7
    bad = [b for p in suites() for b in uncoded_paths(p)]
    assert not bad, "failing paths without a code:\n" + "\n".join(bad)


def test_the_scan_sees_an_uncoded_path(tmp_path):
    p = tmp_path / "test_x.py"
    p.write_text("def test_a():\n    expect(x, 'm')\n    expect(x, 'm', 'a.b')\n    assert y\n"
                 "    conclude(d, evidence=e)\n    raise AssertionError('z')\n")
    assert sorted(b.split(": ", 1)[1] for b in uncoded_paths(p)) == [
        "assert statement", "conclude without a code", "expect without a code", "raise AssertionError"]


def test_every_code_used_is_in_the_catalogue_of_codes():
    used = {c: p.name for p in suites() for c in code_literals(p)}
    for name in INVARIANT_MODULES:
        used.update({c: name for c in code_literals(REPO / "glmverify" / name)})
    used.update({c: "checks.RAISED_CODES" for c in checks.RAISED_CODES.values()})
    used[checks.SERVING_CODE] = "checks.SERVING_CODE"
    assert len(used) >= 150
    missing = {c: where for c, where in used.items() if c not in CODES}
    assert not missing, f"codes used but not listed in glmverify/failure_codes.py: {missing}"
    assert all(meaning(c) and len(meaning(c)) < 240 for c in CODES)  # one line each
    assert all(c.count(".") == 1 and c == c.lower() and " " not in c for c in CODES)  # area.what


def test_the_fault_catalogue_matches_listed_codes_only():
    items = [(e.id, code) for e in load_entries() for code, _, _ in e.codes]
    assert len(items) >= 80
    assert not [i for i in items if i[1] not in CODES]


# ---- a failure's code and fields ------------------------------------------------------------------------
def test_expect_keeps_the_two_argument_form_and_codes_the_others():
    with pytest.raises(AssertionError) as plain:
        expect(False, "just a message")
    assert coded(plain.value) == {} and str(plain.value) == "just a message"
    with pytest.raises(AssertionError) as exc:
        expect(False, "call 0: arguments are not JSON", "tool_call.arguments_not_json", mode="stream", call=0,
               names={"b", "a"}, text="x" * 500)
    assert coded(exc.value) == {"code": "tool_call.arguments_not_json",
                                "fields": {"mode": "stream", "call": 0, "names": ["a", "b"], "text": "x" * 200}}
    expect(True, "never raised", "a.b")


def test_conclude_codes_a_failed_decision_and_a_serving_bar_by_its_own():
    rule = Rule(name="r", quantity="a rate", kind="proportion", higher_is_better=True, verify_bound=0.6,
                fail_bound=0.6, alpha=0.05, looks=(40,), effect=0.3)
    bad, good = decide(rule, [False] * 40), decide(rule, [True] * 40)
    assert (bad.status, good.status) == ("failed", "verified")
    serving_bad = policy.serving_decision("x", 20, ["timeout"] * 20)
    with pytest.raises(Failure) as exc:
        conclude(good, bad, serving_bad, code="tool_call.calls_rate_below_bar")
    assert exc.value.code == "tool_call.calls_rate_below_bar"
    assert exc.value.fields["codes"] == ["serving.error_rate", "tool_call.calls_rate_below_bar"]
    assert exc.value.fields["rule"] == "r" and exc.value.fields["n"] == 40
    with pytest.raises(Failure) as only_serving:
        conclude(good, serving_bad, code="tool_call.calls_rate_below_bar")
    assert only_serving.value.code == "serving.error_rate"  # a timeout is no defect of the measure
    with pytest.raises(Failure) as by_rule:
        conclude(bad, code=lambda d: "effort.fall_through_differs" if "=" in d.rule else "effort.level_not_lower")
    assert by_rule.value.code == "effort.level_not_lower"
    conclude(good, code="x.y")


def test_harness_exceptions_before_a_check_get_codes_by_class():
    from glmverify.adapters import ServedModelError
    from glmverify.observed import ObservedMismatch

    assert coded(ObservedMismatch("speculative decoding: declared True, observed False"))["code"] == "deployment.differs_from_row"
    assert coded(ServedModelError("no such model"))["code"] == "deployment.served_model_missing"
    assert coded(RuntimeError("boom")) == {} and coded(None) == {}


# ---- code and fields in the results document (a real pytest run with the plugin) ---------------------------
CHILD_TEST = '''
import pytest
from glmverify.chat import Chat
from glmverify.checks import Inconclusive, expect, split_ok

pytestmark = pytest.mark.feature("tool_calls")


def ask(engine, prompt):
    return Chat(engine, stream=True).one(messages=[{"role": "user", "content": prompt}])


def test_coded(engine):
    # misleading wording on purpose: the code decides
    expect(False, "raw '<tool_call>' left in content", "tool_call.arguments_not_json", mode="stream", call=0)


def test_uncoded(engine):
    assert False, "a failure without a code"


def test_ledger(engine):
    assert ask(engine, "Capital of France? (resent)").content  # passes: the ledger fails it, coded


def test_split_helper(engine):
    res = ask(engine, "Capital of France?")
    res.reasoning = None  # as a dropped reasoning field
    split_ok(res)


def test_undecided(engine):
    raise Inconclusive("INCONCLUSIVE: counters unobserved", "mtp.unobserved", why="GET /metrics: HTTP 404")
'''


def test_code_and_fields_reach_the_results_document_and_the_diagnosis(tmp_path):
    rec = {r["id"]: r for r in load_recordings()}
    body = rec["chat-reasoning-stream"]["body"].split("\n")
    i = next(k for k, ln in enumerate(body) if '"content":"' in ln and '"content":""' not in ln)
    names = ["test_coded", "test_uncoded", "test_ledger", "test_split_helper", "test_undecided"]
    run, doc = run_child(tmp_path, CHILD_TEST, names, good=rec["chat-reasoning-stream"]["body"],
                         resent=resent_after(body, i))
    cell = next(c for c in doc["cells"] if c["row"] == "reference" and c["feature"] == "tool_calls")
    got = {c["id"]: c for c in cell["checks"]}
    assert run.returncode == 1 and set(got) == set(names), run.stdout[-2000:]
    assert got["test_coded"]["code"] == "tool_call.arguments_not_json"
    assert got["test_coded"]["fields"] == {"mode": "stream", "call": 0}
    assert got["test_coded"]["detail"] == "AssertionError: raw '<tool_call>' left in content"  # the wording a reader knows
    assert "code" not in got["test_uncoded"] and "a failure without a code" in got["test_uncoded"]["detail"]
    assert got["test_ledger"]["code"] == "text.accounting" and got["test_ledger"]["fields"]["codes"] == ["text.accounting"]
    split = got["test_split_helper"]
    assert split["code"] == "reasoning.missing" and split["fields"]["think_end_in_content"] is False
    assert got["test_undecided"]["outcome"] == "inconclusive" and got["test_undecided"]["code"] == "mtp.unobserved"
    # the diagnosis read the code, not the wording: an arguments-not-JSON cause, no markup cause
    ids = [g["id"] for g in cell.get("diagnosis", [])]
    assert "proxy-args-invalid-json" in ids[:3] and "proxy-tool-markup-in-content" not in ids, ids
