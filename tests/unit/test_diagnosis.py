"""Diagnosis and known issues: the catalogue read as knowledge, the ranking of causes for a failed
cell, the recorded fault runs replayed through it, and the document keys that carry both.

``fixtures/diagnosis_cases.json.gz`` holds, per fault id of the last full ``make faults`` run (made
after the failure codes were written; accuracy_smoke's failures were coded later, so on it they
carry none), its failed cells reduced to what the diagnosis reads (feature, the row's engine,
version and speculative decoding, every check's id and outcome, the failing checks' details,
codes and fields). Regenerate it
from a fault run's results directory (the field bugs' runs are added the same way) with
``python -m glmverify.faults.judge results/faults-<time> fixtures/diagnosis_cases.json.gz``.
"""
from __future__ import annotations

import gzip
import json

import pytest

from glmverify import diagnosis as dg
from glmverify import knowledge as kn
from glmverify.document import validate_document
from glmverify.faults.judge import case_cell, replay_places
from glmverify.matrix import load
from glmverify.merge import merge_known_issues
from glmverify.paths import FIXTURES_DIR
from glmverify.report import render_html, render_markdown
from glmverify.results import CheckRecord, Recorder

CASES = json.loads(gzip.decompress((FIXTURES_DIR / "diagnosis_cases.json.gz").read_bytes()))


def entry(**kw) -> kn.Entry:
    d = {"id": "e", "kind": "proxy", "fault": kw.pop("fault", "f"), "row": "reference", "suites": ["tool_calls"],
         "expect_failed": ["tool_calls"], **kw}
    return kn.entry_of(d, kw.pop("order", 0))


#: a reference row's facts: the only rows where the stand-in and the fault proxy can be causes
REF = dg.Facts(reference=True)


def failed_cell(*checks, feature="tool_calls"):
    return {"feature": feature, "checks": [{"id": i, "outcome": o, "detail": d} for i, o, d in checks]}


# ---- the recorded fault runs -------------------------------------------------------------------------------
# The recording's failures carry codes, except accuracy_smoke's (coded after the run): entries matched by
# code alone cannot be recognised on those (they say "no known cause" there). It is the held-out test's
# data too: a failure, coded or not, never gets a confident wrong cause.
def replay(entries=None) -> dict[str, list[list[dict]]]:
    entries = kn.load_entries() if entries is None else entries
    return {case_id: [dg.diagnose(cell, entries, facts) for cell, facts in map(case_cell, cells)]
            for case_id, cells in sorted(CASES.items())}


def test_the_uncoded_recording_gets_no_confident_wrong_cause():
    entries = kn.load_entries()
    by_id = {e.id: e for e in entries}
    wrong, named = {}, 0
    for case_id, diagnoses in replay(entries).items():
        own = by_id[dg.base_id(case_id)]
        ok = dg.alike(own.id) | {own.id}
        for d in diagnoses:
            top = dg.likely(d)
            named += bool(top)
            if len(top) == 1 and top[0]["id"] not in ok and not set(top[0].get("same_cause", [])) & ok:
                wrong[case_id] = top[0]["id"]
    assert len(CASES) >= 65 and not wrong, f"a confident wrong cause on the uncoded recording: {wrong}"
    # the entries that keep a looks_like fallback are still found on it
    fallback = [k for k in CASES if by_id[dg.base_id(k)].looks_like and not by_id[dg.base_id(k)].codes]
    ranks = {k: min((r for d in replay(entries)[k] if (r := dg.rank_in(d, k)) is not None), default=None)
             for k in fallback}
    assert all(r is not None and r <= 3 for r in ranks.values()), ranks


def test_every_recorded_fault_is_placed_by_its_own_entry():
    """The recorded fault run replayed through the current catalogue: every fault's own entry is in
    the top 3 of its failed cell's diagnosis, or outranked only by its documented look-alikes
    (``diagnosis.placed``, the rule ``make faults`` gates on). Left out: a fault whose recorded
    failures carry no code (its suite was coded after the run) while its entry matches codes only,
    which the recording cannot show."""
    entries = kn.load_entries()
    by_id = {e.id: e for e in entries}
    unseen = {k for k, cells in CASES.items()
              if (e := by_id[dg.base_id(k)]).codes and not e.looks_like
              and not any(ch.get("code") for c in cells for ch in c["checks"] if ch["outcome"] in dg.FAILED)}
    assert {dg.base_id(k) for k in unseen} <= {e.id for e in entries if "accuracy_smoke" in e.features}, unseen
    places = replay_places({k: v for k, v in CASES.items() if k not in unseen}, entries)
    out = {k: (rank, [g[0] for g in above]) for k, (rank, above) in places.items() if not dg.placed(k, rank, above)}
    assert len(places) >= 90 and not out, f"own entry outside the top 3, outranked by an unrelated cause: {out}"


def test_placed_is_top_3_or_only_look_alikes_above():
    """The rule itself: the top 3 always; beyond it only when every group ranked with or above the
    own entry has a documented look-alike among its members, and the groups account for the rank."""
    assert dg.placed("x", 3, [["a"], ["b"]]) and not dg.placed("x", None, [])
    own = "proxy-stream-chunk-reordered"
    look = sorted(dg.alike(own))
    assert len(look) >= 3
    assert dg.placed(own, 4, [[look[0]], [look[1]], ["unrelated", look[2]]])  # a same-cause member is alike
    assert not dg.placed(own, 4, [[look[0]], [look[1]], ["standin-no-tool-call"]])
    assert not dg.placed(own, 4, [[look[0]]])  # the groups do not account for the rank
    assert dg.placed(own + "@reference-sglang", 4, [[g] for g in look[:3]])


#: an engine's own words under a code whose entries match them (``detail``): what the engine said
ENGINE_SAYS = {"request.failed": "BadRequestError: Error code: 400 - \"auto\" tool choice requires --enable-auto-tool-choice "
                                 "and --tool-call-parser to be set",
               "engine.startup_failed": "engine failed to start: --enable-auto-tool-choice requires --tool-call-parser"}


def planted(e: kn.Entry, wording: str = "") -> dict:
    """A failed cell as a run of ``e``'s cause records it now: each of its signature checks (or a check of
    its first feature) failing with the entry's first code and fields, under ``wording`` (the engine's
    own words where the entry matches them)."""
    code, fields, rx = e.codes[0]
    wording = wording or (ENGINE_SAYS[code] if rx else "")
    ids = [c.split("::")[1] for c in e.signature_checks] or ["test_x"]
    return {"feature": e.features[0],
            "checks": [{"id": f"{i}[p]", "outcome": "failed", "detail": wording or f"AssertionError: {code}",
                        "code": code, "fields": dict(fields)} for i in ids]}


def test_coded_failures_find_their_entry_and_held_out_no_wrong_one():
    """Every entry with codes, planted as a coded failure (its first code and fields) on a reference
    row that meets its conditions: its cause is likely, at rank <= 3 or tied with a documented
    look-alike; with its cause held out, no other cause is named likely on its own except a
    documented look-alike (the codes tell causes apart, not only the catalogue's order)."""
    entries = kn.load_entries()
    coded = [e for e in entries if e.codes]
    assert len(coded) >= 60
    missed, wrong = {}, {}
    for e in coded:
        facts = dg.Facts(str(e.when.get("engine") or "vllm"), None, bool(e.when.get("spec_decoding")), reference=True)
        d = dg.diagnose(planted(e), entries, facts)
        rank = dg.rank_in(d, e.id)
        top = dg.likely(d)
        if rank is None or not top or (rank > 3 and not {g["id"] for g in top} <= dg.alike(e.id) | {e.id}):
            missed[e.id] = [(g["id"], g["score"]) for g in d[:4]]
        rest = [x for x in entries if x.cause_key != e.cause_key]
        top = dg.likely(dg.diagnose(planted(e), rest, facts))
        if len(top) == 1 and top[0]["id"] not in dg.alike(e.id):
            wrong[e.id] = top[0]["id"]
    assert not missed, f"a coded failure does not find its own entry: {missed}"
    assert not wrong, f"held out, a coded failure gets a confident wrong cause: {wrong}"


def test_a_code_match_outweighs_misleading_wording():
    """A coded failure whose message reads like another cause is diagnosed by its code: the wording
    of a coded failure is never read, and a code match scores more than a pattern match."""
    entries = {e.id: e for e in kn.load_entries()}
    e = entries["proxy-args-schema-invalid"]
    # the wording of a JSON failure, the code of a missing required property
    cell = planted(e, "AssertionError: non-stream: call 0 (get_weather): arguments are not JSON (Expecting value)")
    d = dg.diagnose(cell, entries.values(), REF)
    assert dg.likely(d)[0]["id"] == "proxy-args-schema-invalid"
    assert not any(g["id"] in ("proxy-args-invalid-json", "proxy-stream-chunk-reordered") for g in d)
    # the same wording without a code: the fallback reads it (an uncoded, pre-code record)
    a = entry(id="coded", fault="f1", signature={"codes": [{"code": "tool_call.arguments_schema_invalid"}]})
    b = entry(id="patterned", fault="f2", signature={"looks_like": ["arguments are not JSON"]})
    mixed = failed_cell(("test_case[a]", "failed", "arguments are not JSON"))
    mixed["checks"][0].update(code="tool_call.arguments_schema_invalid", fields={})
    assert [g["id"] for g in dg.diagnose(mixed, [a, b], REF)][:1] == ["coded"]
    assert dg.score(b, mixed, REF)[0] == dg.ANY_CHECK + dg.LOOKS_AGAINST  # wording of a coded failure: not read
    uncoded = failed_cell(("test_case[a]", "failed", "arguments are not JSON"))
    assert [g["id"] for g in dg.diagnose(uncoded, [a, b], REF)][:1] == ["patterned"]
    # a coded failure and an uncoded one in one cell: the code match outweighs the pattern match
    both = failed_cell(("test_case[a]", "failed", "x"), ("test_case[b]", "failed", "arguments are not JSON"))
    both["checks"][0].update(code="tool_call.arguments_schema_invalid", fields={})
    sa, sb = dg.score(a, both, REF)[0], dg.score(b, both, REF)[0]
    assert sa == dg.ANY_CHECK + dg.CODE and sb == dg.ANY_CHECK + dg.LOOKS and sa > sb


def test_code_fields_and_engine_detail_decide_a_match():
    e = kn.entry_of({"id": "e", "kind": "proxy", "fault": "f", "row": "reference", "suites": ["tool_calls"],
                     "expect_failed": ["tool_calls"], "signature": {"codes": [
                         {"code": "calls.unknown_name", "fields": {"mode": "stream"}},
                         {"code": "request.failed", "detail": "requires --enable-auto-tool-choice"}]}})
    def cell(code, detail="d", **fields):
        return {"feature": "tool_calls", "checks": [{"id": "test_case[a]", "outcome": "failed", "detail": detail,
                                                      "code": code, "fields": fields}]}
    assert dg.score(e, cell("calls.unknown_name", mode="stream"), REF)[0] == dg.ANY_CHECK + dg.CODE
    assert dg.score(e, cell("calls.unknown_name", mode="non-stream"), REF)[0] == dg.ANY_CHECK + dg.CODE_AGAINST
    # a failure's listed codes (fields.codes) count, and a list field holds the value
    assert dg.score(e, cell("request.failed", codes=["calls.unknown_name"], mode=["stream"]), REF)[0] == dg.ANY_CHECK + dg.CODE
    assert dg.score(e, cell("request.failed", "HTTP 400: auto tool choice requires --enable-auto-tool-choice"),
                    REF)[0] == dg.ANY_CHECK + dg.CODE
    assert dg.score(e, cell("request.failed", "APITimeoutError: Request timed out"), REF)[0] == dg.ANY_CHECK + dg.CODE_AGAINST


def test_a_timeout_gets_no_known_cause():
    """The issue's case: an effort cell failed on serving errors (timeouts) is no template bug."""
    cell = {"feature": "effort_levels", "checks": [
        {"id": "test_high_reasons_less[kwargs]", "outcome": "failed", "code": "serving.error_rate",
         "fields": {"rule": "serving_errors[effort_levels[kwargs]]"},
         "detail": "AssertionError: kwargs channel: serving errors ... APITimeoutError: Request timed out"}]}
    d = dg.diagnose(cell, kn.load_entries(), dg.Facts("vllm", "0.32.0", reference=True))
    assert dg.no_known_cause(d) and not dg.likely(d)


def test_held_out_faults_get_no_confident_wrong_cause():
    """Each recorded fault diagnosed with its own cause left out of the catalogue: the result is
    "no known cause", or a cause documented as looking the same (fixtures/symptoms.yaml), or a tie
    at the top; never one other cause named likely on its own."""
    entries = kn.load_entries()
    by_id = {e.id: e for e in entries}
    outcomes = {"no known cause": 0, "alike": 0, "tie": 0}
    wrong = {}
    for case_id, cells in sorted(CASES.items()):
        own = by_id[dg.base_id(case_id)]
        rest = [e for e in entries if e.cause_key != own.cause_key]
        named = [dg.likely(dg.diagnose(cell, rest, facts)) for cell, facts in map(case_cell, cells)]
        named = [n for n in named if n]
        if not named:
            outcomes["no known cause"] += 1
        elif all(len(n) > 1 for n in named):
            outcomes["tie"] += 1
        elif all(len(n) > 1 or n[0]["id"] in dg.alike(own.id) | {own.id} for n in named):
            outcomes["alike"] += 1
        else:
            wrong[case_id] = [g["id"] for n in named for g in n]
    print(f"held-out diagnosis over {len(CASES)} recorded faults: {outcomes}")
    assert not wrong, f"a confident wrong cause with the own entry held out: {wrong}"
    assert outcomes["no known cause"] >= len(CASES) // 2


def test_gpu_rows_never_get_test_equipment_as_cause():
    """Every catalogue entry that only the reference rows' stand-in or fault proxy can produce is
    no candidate on any GPU row, whatever the failure looks like (its own patterns included)."""
    m = load()
    gpu = [r for r in m.rows if not r.is_reference]
    assert gpu
    equipment = [e for e in kn.load_entries() if dg.reproduced_on_reference(e) and not e.affects]
    assert len(equipment) >= 20
    for e in equipment:
        cell = failed_cell(*[(f"{c.split('::')[1]}[x]", "failed", " ".join(e.looks_like)) for c in e.signature_checks]
                           or [("test_x", "failed", " ".join(e.looks_like))], feature=e.features[0])
        assert dg.score(e, cell, dg.Facts(reference=True))[0] is not None  # on a reference row it is a candidate
        for row in gpu:
            assert dg.diagnose(cell, [e], dg.facts_of({}, row)) == [], (e.id, row.id)


def test_a_vllm_launch_change_is_no_cause_on_an_sglang_row():
    e = next(e for e in kn.load_entries() if e.id == "launch-template-no-effort-line")
    cell = failed_cell(("test_high_reasons_less[kwargs]", "failed", "APITimeoutError: Request timed out"),
                       feature="effort_levels")
    assert dg.inapplicable(e, dg.Facts("sglang", "0.5.23", reference=True))
    assert dg.diagnose(cell, [e], dg.Facts("sglang", "0.5.23", reference=True)) == []
    assert not dg.inapplicable(e, dg.Facts("vllm", "0.32.0", reference=True))


def test_below_the_floor_no_known_cause_is_said():
    weak = entry(id="weak", fault="fw")  # no signature: the feature failed is all it has
    cell = failed_cell(("test_case[x]", "failed", "something new"))
    d = dg.diagnose(cell, [weak], REF)
    assert d and d[0]["score"] < dg.FLOOR and d[0]["confidence"] == dg.SIMILAR
    assert dg.no_known_cause(d) and dg.likely(d) == []
    strong = entry(id="strong", fault="fs", signature={"looks_like": ["something new"]})
    d2 = dg.diagnose(cell, [weak, strong], REF)
    assert [g["id"] for g in dg.likely(d2)] == ["strong"] and d2[1]["confidence"] == dg.SIMILAR


def test_alike_symptoms_are_listed_together():
    entries = kn.load_entries()
    own = next(e for e in entries if e.id == "proxy-tool-markup-in-content")
    d = dg.diagnose(planted(own), entries, REF)
    top = dg.likely(d)
    assert top and set(top[0].get("alike", [])) | {top[0]["id"]} >= {"launch-no-tool-parser", "proxy-tool-markup-in-content"}
    ids = {e.id for e in entries}
    assert all(c <= ids for c in dg.alike_classes()), "symptoms.yaml names an entry the catalogue lacks"


def test_recording_names_no_machine_path():
    from glmverify.faults.judge import _PATH

    details = [k.get("detail", "") for v in CASES.values() for c in v for k in c["checks"]]
    assert details and not any(_PATH.search(d) for d in details)  # absolute paths were replaced by <path>
    assert all(set(c) == {"feature", "engine", "version", "spec_decoding", "checks"} for v in CASES.values() for c in v)


def test_every_recorded_fault_is_in_the_catalogue():
    ids = {e.id for e in kn.load_entries()}
    assert {dg.base_id(k) for k in CASES} <= ids


# ---- knowledge ---------------------------------------------------------------------------------------------
def test_catalogue_entries_as_data():
    entries = {e.id: e for e in kn.load_entries()}
    assert "control-passthrough" not in entries  # a control is no cause
    e = entries["launch-template-reads-thinking"]
    assert e.signature_checks == ("non_think::test_no_reasoning", "non_think::test_wrong_variable_recorded")
    assert not e.any_check and e.codes and not e.looks_like and e.fix
    assert entries["proxy-args-untyped"].any_check  # no named checks: any check of its features
    assert entries["proxy-stream-chunk-dropped"].cause_key == entries["proxy-stream-tool-structure"].cause_key
    assert entries["launch-no-tool-parser"].cause_key != entries["launch-no-tool-flags"].cause_key
    assert len([e for e in entries.values() if e.codes]) >= 60
    assert entries["proxy-unknown-tool-name"].codes[0] == ("calls.unknown_name", {"mode": "non-stream"}, "")
    assert entries["standin-low-accuracy"].codes[0] == ("accuracy.below_bar", {}, "") and not entries["standin-low-accuracy"].looks_like
    assert kn.catalogue() == kn.catalogue()  # cached, same answer


@pytest.mark.parametrize("item, engine, version, want", [
    ({"engine": "vllm", "versions": "<0.24"}, "vllm", "0.23.0", True),
    ({"engine": "vllm", "versions": "<0.24"}, "vllm", "0.32.0+cpu", False),
    ({"engine": "vllm", "versions": "<0.24"}, "vllm", "v0.23.1", True),
    ({"engine": "vllm", "versions": ">=0.13,<=0.16"}, "vllm", "0.16.0", True),
    ({"engine": "vllm", "versions": "<0.24"}, "vllm", None, False),  # a range needs a known version
    ({"engine": "vllm", "versions": ""}, "vllm", None, True),  # every version, even an unknown one
    ({"engine": "vllm", "versions": ""}, "vllm-ascend", "0.23.0", False),  # vllm-ascend names its own
    ({"engine": "sglang", "versions": "==0.5.*"}, "sglang", "0.5.23", True),
    ({"engine": "sglang", "versions": "<0.5.10"}, "sglang", "0.5.23", False),
])
def test_covers(item, engine, version, want):
    assert kn.covers(item, engine, version) is want


def test_known_issues_of_versions():
    e = entry(id="bug-x", source="vLLM #1", fix="upgrade", affects=[{"engine": "vllm", "versions": "<0.24"}])
    assert kn.known_issues([e], "vllm", "0.23.0", "declared") == [
        {"id": "bug-x", "source": "vLLM #1", "fix": "upgrade", "versions": "<0.24", "engine_version": "0.23.0",
         "basis": "declared"}]
    assert kn.known_issues([e], "vllm", "0.32.0", "observed") == []
    assert kn.known_issues([e], "sglang", "0.5.23", "observed") == []


# ---- scoring -----------------------------------------------------------------------------------------------
def test_signature_checks_and_evidence_against():
    named = entry(id="named", checks=["test_choice_none"])
    cell = failed_cell(("test_choice_none[stream]", "failed", "x"), ("test_choice_none[nonstream]", "passed", ""))
    assert dg.score(named, cell, REF)[0] == dg.CHECKS  # one instance failed: the check failed
    passed = failed_cell(("test_case[a]", "failed", "x"), ("test_choice_none[nonstream]", "passed", ""))
    assert dg.score(named, passed, REF)[0] == dg.CHECKS_AGAINST  # its check ran and passed
    not_run = failed_cell(("test_case[a]", "failed", "x"))
    assert dg.score(named, not_run, REF)[0] == 0  # not run: neither
    two = entry(id="two", suites=["non_think"], expect_failed=["non_think"],
                checks=["test_no_reasoning", "test_wrong_variable_recorded"])
    half = failed_cell(("test_no_reasoning[nonstream]", "failed", "x"), ("test_wrong_variable_recorded", "passed", ""),
                       feature="non_think")
    assert dg.score(two, half, REF)[0] == dg.CHECKS / 2


def test_looks_like_affects_and_when():
    e = entry(id="e", looks_like=["not among the offered tools", "functions\\."],
              affects=[{"engine": "vllm", "versions": "<0.24"}], signature={})
    e = kn.entry_of({"id": "e", "kind": "proxy", "fault": "f", "row": "reference", "suites": ["tool_calls"],
                     "expect_failed": ["tool_calls"], "affects": [{"engine": "vllm", "versions": "<0.24"}],
                     "signature": {"looks_like": ["NOT among the offered tools", "functions\\.", "never"],
                                   "when": {"spec_decoding": True}}})
    cell = failed_cell(("test_case[a]", "failed", "call 0: name 'functions.get' not among the offered tools"))
    s, matched = dg.score(e, cell, dg.Facts("vllm", "0.23.0", True, reference=True))
    assert s == dg.ANY_CHECK + dg.LOOKS + dg.LOOKS_MORE + dg.AFFECTS + dg.WHEN
    assert any("looks like" in m for m in matched) and any("affects vllm <0.24" in m for m in matched)
    # the fault proxy reproduces the vLLM bug on the SGLang reference too: no affects bonus there
    s2, _ = dg.score(e, cell, dg.Facts("sglang", "0.5.23", False, reference=True))
    assert s2 == dg.ANY_CHECK + dg.LOOKS + dg.LOOKS_MORE + dg.WHEN_AGAINST
    other = failed_cell(("test_case[a]", "failed", "arguments are not JSON"))
    assert dg.score(e, other, dg.Facts("vllm", "0.32.0", True, reference=True))[0] == dg.ANY_CHECK + dg.LOOKS_AGAINST + dg.WHEN
    assert dg.score(e, failed_cell(("test_split", "failed", "x"), feature="reasoning_split"), REF)[0] is None
    # on a GPU row the bug is a cause only on its engine, in its versions
    assert dg.score(e, cell, dg.Facts("sglang", "0.5.23", True))[0] is None
    assert dg.score(e, cell, dg.Facts("vllm", "0.32.0", True))[0] is None
    assert dg.score(e, cell, dg.Facts("vllm", "0.23.0", True))[0] == s


def test_same_cause_is_one_diagnosis_and_ties_rank_pessimistically():
    a = entry(id="a", fault="f1", order=0, signature={"looks_like": ["boom"]})
    a2 = entry(id="a2", fault="f1", order=1, checks=["test_case"], signature={"looks_like": ["boom"]})
    b = entry(id="b", fault="f2", order=2, signature={"looks_like": ["boom"]})
    c = entry(id="c", fault="f3", order=3, signature={"looks_like": ["other"]})
    cell = failed_cell(("test_case[x]", "failed", "boom"))
    d = dg.diagnose(cell, [a, a2, b, c], REF)
    assert [g["id"] for g in d] == ["a2", "b", "c"]  # a and a2 one cause, a2 scores more (its named check)
    assert d[0]["same_cause"] == ["a"] and "same_cause" not in d[1]
    assert dg.rank_in(d, "a") == 1 and dg.rank_in(d, "a@reference-sglang") == 1
    tie = dg.diagnose(cell, [a, b], REF)
    assert tie[0]["score"] == tie[1]["score"] and dg.rank_in(tie, "a") == 2 == dg.rank_in(tie, "b")
    assert dg.rank_in(d, "nope") is None
    assert dg.diagnose(cell, [a, a2, b, c], REF) == d  # deterministic


def test_diagnosis_lists_positive_scores_at_most_five():
    many = [entry(id=f"e{i}", fault=f"f{i}", order=i, signature={"looks_like": ["boom"]}) for i in range(8)]
    none = entry(id="z", fault="fz", order=9, signature={"looks_like": ["never"]}, checks=["test_choice_none"])
    cell = failed_cell(("test_case[x]", "failed", "boom"), ("test_choice_none", "passed", ""))
    d = dg.diagnose(cell, many + [none], REF)
    assert len(d) == dg.MAX_LISTED and all(g["score"] > 0 for g in d) and "z" not in {g["id"] for g in d}
    assert set(d[0]) == {"id", "score", "cause", "source", "fix", "matched", "confidence"}


def test_facts_of_a_cell_and_a_row():
    m = load()
    cell = {"engine": "vllm", "evidence": {"engine": {"engine_version": "0.32.0", "observed": {"version": "0.32.1"},
                                                      "declared": {"speculative": True}}}}
    assert dg.facts_of(cell) == dg.Facts("vllm", "0.32.1", True)  # no row: not a reference row
    assert dg.facts_of({**cell, "row": "reference"}).reference is True
    assert dg.facts_of({}, m.row("reference-ngram")) == dg.Facts("vllm", "0.32.0", True, reference=True)
    assert dg.facts_of({}, m.row("vllm-glm52-fp8-h200")).reference is False
    assert dg.facts_of({}, m.row("reference")).spec_decoding is False


# ---- the document ------------------------------------------------------------------------------------------
def test_recorder_writes_diagnosis_and_known_issues(tmp_path):
    r = Recorder(load(), tmp_path, {"id": "run-d"})
    first = r.write()
    issues = first["known_issues"]
    assert issues and all(i["basis"] == "declared" for v in issues.values() for i in v)
    glm52 = issues.get("vllm-glm52-fp8-h200") or []
    assert glm52 and all(i["engine_version"] == "0.23.0" for i in glm52)
    assert "reference" not in issues or all(i["versions"] == "" for i in issues["reference"])  # 0.32: no range covers it
    r.add(CheckRecord("reference", "tool_calls", "test_case[nonstream-auto-single-weather]", "failed",
                      detail="AssertionError: call 0: name 'functions.get_weather' not among the offered tools",
                      engine={"engine_version": "0.32.0", "observed": {"version": "0.23.0"}},
                      code="calls.unknown_name", fields={"mode": "non-stream", "codes": ["calls.unknown_name"]}))
    doc = json.loads((tmp_path / "matrix.json").read_text())
    cell = next(c for c in doc["cells"] if c["row"] == "reference" and c["feature"] == "tool_calls")
    assert cell["checks"][0]["code"] == "calls.unknown_name" and cell["checks"][0]["fields"]["mode"] == "non-stream"
    assert cell["diagnosis"][0]["id"] == "proxy-unknown-tool-name"
    assert all(i["basis"] == "observed" and i["engine_version"] == "0.23.0" for i in doc["known_issues"]["reference"])
    assert not validate_document(doc)
    ok = next(c for c in doc["cells"] if c["status"] != "failed")
    assert "diagnosis" not in ok


def test_document_validation_of_the_new_keys():
    base = {"schema": 1, "run": {}, "cells": [{"row": "r", "feature": "f", "status": "failed", "checks": []}]}
    assert not validate_document({**base, "known_issues": {"r": [{"id": "x"}]}})
    assert validate_document({**base, "known_issues": {"r": "x"}})
    bad = {**base, "cells": [{**base["cells"][0], "diagnosis": "x"}]}
    assert any("diagnosis" in p for p in validate_document(bad))


def test_merge_unites_known_issues():
    a = {"r1": [{"id": "x", "basis": "declared"}], "r2": [{"id": "y", "basis": "observed", "engine_version": "1"}]}
    b = {"r1": [{"id": "x", "basis": "observed"}, {"id": "z", "basis": "declared"}],
         "r2": [{"id": "y", "basis": "declared", "engine_version": "2"}]}
    got = merge_known_issues([a, b])
    assert got == {"r1": [{"id": "x", "basis": "observed"}, {"id": "z", "basis": "declared"}],
                   "r2": [{"id": "y", "basis": "observed", "engine_version": "1"}]}


def test_reports_show_diagnosis_and_known_issues():
    doc = {"schema": 1, "run": {"id": "r"}, "known_issues": {"reference": [
        {"id": "bug-x", "source": "vLLM #46040", "fix": "upgrade to 0.24", "versions": "<0.24", "basis": "declared",
         "engine_version": "0.23.0"}]},
        "cells": [{"row": "reference", "engine": "vllm", "image": "i", "hardware": "cpu", "feature": "tool_calls",
                   "status": "failed", "basis": "b", "checks": [{"id": "t", "outcome": "failed", "detail": "d"}],
                   "evidence": {}, "diagnosis": [
                       {"id": "bug-x", "score": 9, "cause": "the call lands in reasoning", "source": "vLLM #46040",
                        "fix": "upgrade to 0.24", "matched": ["looks like /x/"]},
                       {"id": "other", "score": 2, "cause": "second cause", "source": "", "fix": "", "matched": []}]}]}
    md = render_markdown(doc)
    assert "**likely cause**: the call lands in reasoning" in md and "## Known issues per row" in md
    assert "vLLM \\#46040" in md and "upgrade to 0.24" in md  # md_text escapes the #
    page = render_html(doc, figures=[])
    assert "likely cause:" in page and "second cause" in page and "1 known issue(s)" in page


def test_plan_prints_a_rows_known_issues():
    from glmverify.plan import known_issues_text

    m = load()
    text = known_issues_text([m.row("vllm-glm52-fp8-h200"), m.row("reference")])
    assert "# known issues of vllm-glm52-fp8-h200 (vllm 0.23.0):" in text and "proxy-tool-results-emptied" in text
    assert "proxy-reasoning-renamed" not in text  # >=0.13,<=0.16 does not cover 0.23.0


def test_reports_say_no_known_cause_below_the_floor():
    cell = {"row": "vllm-glm52-fp8-h200", "engine": "vllm", "image": "i", "hardware": "h200", "feature": "effort_levels",
            "status": "failed", "basis": "b", "checks": [{"id": "t", "outcome": "failed", "detail": "timed out"}],
            "evidence": {}, "diagnosis": [{"id": "weak", "score": 2.0, "cause": "a weak match", "source": "", "fix": "",
                                           "matched": ["effort_levels failed"], "confidence": "similar"}]}
    doc = {"schema": 1, "run": {"id": "r"}, "cells": [cell]}
    md = render_markdown(doc)
    assert "**no known cause matches**" in md and "**likely cause**" not in md and "similar: a weak match" in md
    page = render_html(doc, figures=[])
    assert "no known cause matches" in page and "likely cause:" not in page and "similar known causes" in page


def test_symptoms_file_parses_and_names_catalogue_entries():
    """The diagnosis reads fixtures/symptoms.yaml leniently (a results document must still be
    written), so a broken file would silently drop every look-alike class: it must parse here, and
    every class must name at least two entries the catalogue has."""
    import yaml

    data = yaml.safe_load(dg.SYMPTOMS.read_text(encoding="utf-8"))
    ids = {e.id for e in kn.load_entries()}
    assert isinstance(data, list) and data
    for d in data:
        assert d.get("symptom") and d.get("why"), d
        assert len(d["entries"]) >= 2 and set(d["entries"]) <= ids, (d["symptom"], set(d["entries"]) - ids)
    assert len(dg.alike_classes()) == len(data)
