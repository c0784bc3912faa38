"""The tool-call field bugs' proxy rewrites (glmverify/faultproxy/field_tool_faults.py), offline.

Each fault is applied to answers recorded from the reference engine (fixtures/faultproxy_recordings.jsonl.gz;
a call cut by max_tokens is derived from a recorded stream by ending it mid-arguments, as the engines
do) and the rewritten answer is parsed by the harness (glmverify.chat, glmverify.toolcalls and the
tool_calls suite's own ``validate_calls``): it must show the reported symptom, the harness must flag
it, and the entry's signature (fixtures/faults.d/tool_calls.yaml) must match the code and fields of
the failure the harness raises, not its neighbours'.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from glmverify import faultproxy as fp
from glmverify import faults
from glmverify.checks import TOOL_MARKUP, coded, no_markup
from glmverify.diagnosis import code_matches
from glmverify.faultproxy import field_tool_faults as ftf
from glmverify.faultproxy.bodies import stream_calls
from glmverify.knowledge import entry_of
from glmverify.toolcalls import declared, field_problems
from helpers.suite_module import load_suite
from helpers.wire import parse_answer

ROOT = Path(__file__).resolve().parents[2]
REC = {d["id"]: d for d in faults.load_recordings()}
ENTRIES = {e["id"]: e for e in yaml.safe_load((ROOT / "fixtures" / "faults.d" / "tool_calls.yaml").read_text())}
OFFERED = ["get_weather", "get_time"]
BOTH = ["nonstream", "stream"]


SUITE = load_suite("test_tool_calls.py", "tool_calls_suite")


def parse(text: str, stream: bool):
    """An answer as the suite's Chat sees it: parsed, keeping its wire form (what each call declared)."""
    return parse_answer(text, stream)


def rewritten(rec_id: str, fault: str | fp.Fault | None, text: str | None = None):
    d = REC[rec_id]
    text = d["body"] if text is None else text
    if fault is not None:
        text = fp.apply(fp.FAULTS[fault] if isinstance(fault, str) else fault, d["kind"], d["stream"], text)
    return parse(text, d["stream"])


def looks_like(entry: str, failure: AssertionError) -> bool:
    """Whether ``entry``'s signature codes match the raised failure's code and fields (as the diagnosis)."""
    c = coded(failure)
    assert c, f"an uncoded failure: {failure}"
    codes = {c["code"], *c["fields"].get("codes", [])}
    return any(code_matches(it, codes, c["fields"], str(failure)) for it in entry_of(ENTRIES[entry]).codes)


def message(fn, *args) -> AssertionError:
    with pytest.raises(AssertionError) as exc:
        fn(*args)
    return exc.value


def test_recordings_pass_the_field_checks():
    for mode in BOTH:
        res = rewritten(f"chat-tools-{mode}", None)
        assert field_problems(res, OFFERED) == [] and SUITE.validate_calls(res, OFFERED)
        assert [d["type"] for d in declared(res)] == ["function", "function"]
        if mode == "stream":
            assert all(len(d["headers"]) == 1 for d in declared(res))  # each header once


def test_every_entry_names_a_registered_fault():
    assert {e["fault"] for e in ENTRIES.values()} <= set(fp.FAULTS)
    assert all(e["signature"]["codes"] and e["affects"] and e["fix"] for e in ENTRIES.values())


@pytest.mark.parametrize("mode", BOTH)
def test_tool_call_in_reasoning(mode):
    res = rewritten(f"chat-tools-{mode}", "tool_call_in_reasoning")
    assert not res.tool_calls and res.finish_reason == "stop" and not res.problems  # the stream stays well ordered
    assert res.reasoning.endswith("<tool_call>get_time</tool_call>") and "<tool_call>" not in (res.content or "")
    msg = message(no_markup, res, TOOL_MARKUP)
    assert looks_like("bug-vllm-46040-tool-call-in-reasoning", msg), msg
    # the neighbour (markup in content) is told apart
    other = message(no_markup, rewritten(f"chat-tools-{mode}", "tool_markup_in_content"), TOOL_MARKUP)
    assert not looks_like("bug-vllm-46040-tool-call-in-reasoning", other), other


def test_stream_tool_name_truncated():
    plain = rewritten("chat-tools-nonstream", "stream_tool_name_truncated")
    assert [c.name for c in plain.tool_calls] == OFFERED  # non-stream correct
    res = rewritten("chat-tools-stream", "stream_tool_name_truncated")
    assert [c.name for c in res.tool_calls] == ["get", "get"]
    msg = message(SUITE.validate_calls, res, OFFERED)
    assert looks_like("bug-vllm-39757-stream-tool-name-truncated", msg), msg
    # unknown names in both modes fail non-stream first: another cause
    other = message(SUITE.validate_calls, rewritten("chat-tools-nonstream", "unknown_tool_name"), OFFERED)
    assert not looks_like("bug-vllm-39757-stream-tool-name-truncated", other), other


def test_stream_args_stray_flush():
    assert SUITE.validate_calls(rewritten("chat-tools-nonstream", "stream_args_stray_flush"), OFFERED)
    res = rewritten("chat-tools-stream", "stream_args_stray_flush")
    assert [c.arguments for c in res.tool_calls] == ['{"city": "Tokyo", "days": 2}{}', "{}{}"]
    msg = message(SUITE.validate_calls, res, OFFERED)
    assert looks_like("bug-vllm-34449-stream-args-invalid-json", msg), msg
    other = message(SUITE.validate_calls, rewritten("chat-tools-nonstream", "args_invalid_json"), OFFERED)
    assert not looks_like("bug-vllm-34449-stream-args-invalid-json", other), other


def test_stream_header_on_last_chunk():
    base = rewritten("chat-tools-stream", None)
    res = rewritten("chat-tools-stream", "stream_header_on_last_chunk")
    # the same calls reassemble; the last chunk carries the header again with finish_reason
    assert [(c.name, c.arguments) for c in res.tool_calls] == [(c.name, c.arguments) for c in base.tool_calls]
    assert res.finish_reason == "tool_calls" and any("sent twice" in p for p in res.problems), res.problems
    events = fp.parse_sse(fp.apply(fp.FAULTS["stream_header_on_last_chunk"], "chat", True, REC["chat-tools-stream"]["body"]))
    last = next(e.data["choices"][0] for e in reversed(events) if isinstance(e.data, dict) and e.data.get("choices")
                and e.data["choices"][0].get("finish_reason"))
    assert last["finish_reason"] == "tool_calls" and last["delta"]["tool_calls"][-1]["id"]
    msg = message(SUITE.fields_ok, res, OFFERED)
    assert looks_like("bug-vllm-44098-stream-header-on-last-chunk", msg), msg
    other = message(SUITE.fields_ok, rewritten("chat-tools-stream", "stream_chunk_resplit"), OFFERED)
    assert not looks_like("bug-vllm-44098-stream-header-on-last-chunk", other), other


def _cut_stream() -> str:
    """The recorded tool stream ended inside get_weather's arguments, as an engine ends a call
    cut by max_tokens: the last fragment, then a chunk with finish_reason length, usage, [DONE]."""
    events = fp.parse_sse(REC["chat-tools-stream"]["body"])
    frags = stream_calls(events)[0]["frags"]
    at = frags[len(frags) // 2][0]
    finish = copy.deepcopy(next(e for e in events if isinstance(e.data, dict) and e.data.get("choices")
                                and e.data["choices"][0].get("finish_reason")))
    finish.data["choices"][0].update(delta={}, finish_reason="length")
    usage = next(e for e in events if isinstance(e.data, dict) and e.data.get("usage"))
    return fp.render_sse(events[: at + 1] + [finish, usage, fp.Event(fp.DONE)])


def test_cut_call_finish_tool_calls():
    conforming = parse(_cut_stream(), True)
    assert conforming.finish_reason == "length" and conforming.tool_calls and not conforming.problems
    res = parse(fp.apply(fp.FAULTS["cut_call_finish_tool_calls"], "chat", True, _cut_stream()), True)
    assert res.finish_reason == "tool_calls" and res.tool_calls[0].name == "get_weather"
    with pytest.raises(ValueError):  # the partial call that now looks complete
        json.loads(res.tool_calls[0].arguments)
    # non-stream, a call parsed from a cut answer (finish length): left as raw markup in content
    body = json.loads(REC["chat-tools-nonstream"]["body"])
    body["choices"][0]["finish_reason"] = "length"
    cut = parse(fp.apply(fp.FAULTS["cut_call_finish_tool_calls"], "chat", False, json.dumps(body)), False)
    assert not cut.tool_calls and cut.finish_reason == "length" and "<tool_call>get_weather<arg_key>city" in cut.content
    # complete answers are left alone
    assert rewritten("chat-tools-nonstream", "cut_call_finish_tool_calls").tool_calls
    assert rewritten("chat-tools-stream", "cut_call_finish_tool_calls").finish_reason == "tool_calls"


@pytest.mark.parametrize("mode", BOTH)
def test_required_runaway(mode):
    f = fp.FAULTS["required_runaway"]
    assert f.applies({"tool_choice": "required"}) and not f.applies({"tool_choice": "auto"})
    res = rewritten(f"chat-tools-{mode}", f)
    assert res.truncated and not res.tool_calls and not res.problems and res.content.startswith("[\n")
    assert field_problems(res, OFFERED) == []  # no call, no tool_calls finish: the suite's run-to-max_tokens check names it


@pytest.mark.parametrize("mode", BOTH)
@pytest.mark.parametrize("which", ftf.FIELDS)
def test_tool_call_field_empty(which, mode):
    on_body, on_stream = ftf.empty_field(which)
    hook = fp.Fault("t", "t", chat=on_body, chat_stream=on_stream)
    res = rewritten(f"chat-tools-{mode}", hook)
    assert res.finish_reason == "tool_calls"
    msg = "; ".join(field_problems(res, OFFERED))
    assert f"empty {which}" in msg
    failure = message(SUITE.fields_ok, res, OFFERED)
    assert looks_like("bug-vllm-ascend-8130-tool-call-field-empty", failure), failure
    assert not looks_like("bug-vllm-39757-stream-tool-name-truncated", failure)


def test_field_empty_hits_one_request_with_tools_in_three():
    f = fp.FAULTS["tool_call_field_empty_sometimes"]
    tools = {"tools": [{"type": "function", "function": {"name": "get_time"}}]}
    assert not any(f.applies({"messages": []}) for _ in range(6))  # requests without tools are never hit
    assert not f.applies({"tools": [{"name": "get_time", "input_schema": {}}]})  # nor Anthropic ones
    hits = [f.applies(tools) for _ in range(9)]
    assert sum(hits) == 3


def test_field_checks_name_undeclared_fields():
    body = json.loads(REC["chat-tools-nonstream"]["body"])
    del body["choices"][0]["message"]["tool_calls"][0]["type"]
    msg = "; ".join(field_problems(parse(json.dumps(body), False), OFFERED))
    assert "type None, expected 'function'" in msg
    body["choices"][0]["message"]["tool_calls"] = []
    msg = "; ".join(field_problems(parse(json.dumps(body), False), OFFERED))
    assert "finish_reason 'tool_calls' but no tool call" in msg
