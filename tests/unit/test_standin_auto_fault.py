"""``standin_no_tool_call_auto`` offline: which requests it changes, what its answers look like to the
suite, and its catalogue entry (the proxy over HTTP: tests/integration/test_standin_auto_fault_proxy.py).

The fault asks the GLM-5.2 stand-in for ``no_tool_call`` (prose instead of a call; its script is
tested in tests/integration/test_standin_script.py) on requests whose ``tool_choice`` leaves the
call to the model (auto, or absent) and on no other. Such a prose answer (recorded from the
reference: fixtures/faultproxy_recordings.jsonl.gz) holds to every invariant of the tool_calls
suite and counts as a miss of its calls rate: test_calls_agree fails, with the code the catalogue
entry's signature names, and nothing else does.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from glmverify import behaviour, faults
from glmverify import faultproxy as fp
from glmverify.chat import StreamAssembler, parse_completion
from glmverify.diagnosis import alike
from helpers.suite_module import load_suite

REC = {d["id"]: d for d in faults.load_recordings()}
FAULT = fp.FAULTS["standin_no_tool_call_auto"]
PATH = "/v1/chat/completions"


SUITE = load_suite("test_tool_calls.py", "tool_calls_suite_auto_unit")


def _body(case_id: str, **over) -> dict:
    """The suite's request for ``case_id``, with ``over`` set (a None value: that key left out)."""
    body = {"model": "glm-5.2-ref", **SUITE._request(SUITE.BY_ID[case_id]), **over}
    return {k: v for k, v in body.items() if v is not None}


def _sent(body: dict) -> dict:
    """What the proxy forwards for ``body`` (its ``when`` decides whether the request hook runs)."""
    return FAULT.request(PATH, body) if FAULT.applies(body) else body


@pytest.mark.parametrize("choice", ["auto", None], ids=["auto", "absent"])
def test_auto_requests_ask_for_prose(choice):
    body = _body("auto-single-weather", tool_choice=choice)
    assert body.get("tool_choice") == choice
    sent = _sent(body)
    assert all(sent[f] == {fp.STANDIN_XARGS_KEY: "no_tool_call"} for f in fp.STANDIN_FIELDS)  # vLLM's and SGLang's field
    assert {k: v for k, v in sent.items() if k not in fp.STANDIN_FIELDS} == body


@pytest.mark.parametrize("case_id, over", [("required", {}), ("named-function", {}), ("auto-parallel", {"tool_choice": "none"})],
                         ids=["required", "named", "none"])
def test_forced_and_none_requests_are_sent_as_they_are(case_id, over):
    body = _body(case_id, **over)
    assert body["tool_choice"] != "auto" and _sent(body) == body


def test_requests_without_tools_and_answers_are_not_touched():
    assert not FAULT.applies({"messages": []}) and not FAULT.applies({"messages": [], "tools": [], "tool_choice": "auto"})
    assert FAULT.chat is None and FAULT.chat_stream is None  # the answer is the engine's own: nothing rewritten


def _parse(rec_id: str, req: dict):
    d = REC[rec_id]
    if d["stream"]:
        asm = StreamAssembler()
        for line in d["body"].splitlines():
            asm.feed_line(line)
        res = asm.result()
    else:
        res = parse_completion(json.loads(d["body"]))
    res.request = req
    return res


@pytest.mark.parametrize("mode", ["nonstream", "stream"])
def test_a_prose_answer_holds_the_invariants_and_misses_the_calls_rate(mode):
    case = SUITE.BY_ID["auto-parallel"]
    res = _parse(f"chat-reasoning-{mode}", _body(case["id"]))  # the stand-in's prose, as the reference sent it
    assert not res.tool_calls and res.finish_reason == "stop" and (res.content or "").strip()
    SUITE.invariants(res, case)  # test_case holds: only the choice to call changed
    j = behaviour.judge(case, res, SUITE.SCHEMAS)
    assert j.calls is False and j.correct is None and j.exact is None and "expected a tool call, got none" in j.note
    called = behaviour.judge(case, _parse(f"chat-tools-{mode}", _body(case["id"])), SUITE.SCHEMAS)
    assert called.calls is True  # the same case answered with its calls is no miss


def test_catalogue_entry_fails_the_calls_rate_on_sglang():
    cases = {c.id: c for c in faults.load_catalogue()}
    e = cases["standin-no-tool-call-auto"]
    assert (e.kind, e.fault, e.row, e.checks) == ("proxy", FAULT.name, "reference-sglang", ["test_calls_agree"])
    assert e.signature["codes"] == [SUITE.RATE_CODES["calls"]]  # the code test_calls_agree concludes with
    assert e.fix and e.why and e.source
    # the whitespace rewrite is the proxy's, engine-agnostic: it runs on both references, narrowed to its check
    ws = [c for c in cases.values() if c.fault == "args_whitespace_stripped"]
    assert sorted(c.row for c in ws) == ["reference", "reference-sglang"]
    assert all(c.checks == ["test_exact_strings"] and c.signature["codes"] == [SUITE.RATE_CODES["exact"]] for c in ws)


def test_the_look_alike_is_documented():
    assert "standin-no-tool-call" in alike("standin-no-tool-call-auto")
    assert "standin-no-tool-call-auto" in alike("standin-no-tool-call")
