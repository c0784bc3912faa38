"""Stream and non-stream normalisation against recorded engine responses (no engine needed)."""
from __future__ import annotations

import json

from glmverify.chat import StreamAssembler, parse_completion
from glmverify.client import parse_prometheus


def sse(chunks, done=True):
    lines = [f"data: {json.dumps(c)}" for c in chunks]
    return lines + (["data: [DONE]"] if done else [])


def delta(**d):
    return {"choices": [{"index": 0, "delta": d, "finish_reason": None}]}


def finish(reason):
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}


def assemble(lines):
    a = StreamAssembler()
    for ln in lines:
        a.feed_line(ln)
    return a.result()


def test_vllm_stream_reassembles():
    chunks = [delta(role="assistant"), delta(reasoning="Let me "), delta(reasoning="think."),
              delta(content="Paris"),
              delta(tool_calls=[{"index": 0, "id": "chatcmpl-tool-1", "type": "function",
                                 "function": {"name": "get_weather", "arguments": ""}}]),
              delta(tool_calls=[{"index": 0, "function": {"arguments": '{"city": '}}]),
              delta(tool_calls=[{"index": 0, "function": {"arguments": '"Paris"}'}}]),
              finish("tool_calls"), {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}}]
    r = assemble(sse(chunks))
    assert r.problems == []
    assert r.reasoning == "Let me think." and r.reasoning_field == "reasoning"
    assert r.content == "Paris" and r.finish_reason == "tool_calls" and r.completion_tokens == 9
    assert r.tool_calls[0].name == "get_weather" and r.tool_calls[0].parsed() == {"city": "Paris"}


def test_stream_defects_are_reported():
    chunks = [delta(content="A"), delta(reasoning_content="late"),
              delta(tool_calls=[{"index": 0, "id": "x", "function": {"name": "f", "arguments": "{}"}}]),
              delta(tool_calls=[{"index": 0, "id": "x", "function": {"name": "f"}}])]
    r = assemble(sse(chunks, done=False) + ["data: {not json"])
    text = " | ".join(r.problems)
    for needle in ("reasoning delta after content", "id sent twice", "name sent twice",
                   "malformed JSON", "without data: [DONE]", "without a finish_reason"):
        assert needle in text, (needle, r.problems)
    # each defect carries its stable code (glmverify.invariants), which the per-check ledger reports
    assert {p.code for p in r.problems} == {"stream.reasoning_after_content", "stream.call_header_resent",
                                            "stream.malformed_json", "stream.no_done", "stream.no_finish"}


def test_content_after_done_and_a_changed_finish_reason_are_coded():
    r = assemble(sse([delta(content="A"), {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                      {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}]) + ["data: {}"])
    assert [(p.code, str(p)) for p in r.problems] == [
        ("stream.finish_reason_changed", "finish_reason sent twice with different values"),
        ("stream.data_after_done", "data after [DONE]")]


def test_both_reasoning_names_accepted():
    body = {"choices": [{"message": {"content": "4", "reasoning_content": "2+2"}, "finish_reason": "stop"}]}
    r = parse_completion(body)
    assert r.reasoning == "2+2" and r.reasoning_field == "reasoning_content" and not r.problems
    both = {"choices": [{"message": {"content": "4", "reasoning": "2+2", "reasoning_content": "2+2"}, "finish_reason": "stop"}]}
    assert parse_completion(both).reasoning_field == "reasoning"


def test_non_stream_garbage():
    assert parse_completion({"oops": 1}).problems
    r = parse_completion({"choices": [{"message": {"content": 5, "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]}}]})
    assert any("not a string" in p for p in r.problems)
    assert any("not a JSON string" in p for p in r.problems)
    assert {p.code for p in r.problems} == {"body.field_type", "calls.arguments_not_string"}
    assert parse_completion({"oops": 1}).problems[0].code == "body.no_choices"


def test_prometheus_parsing():
    text = '# HELP x\nvllm:spec_decode_num_drafts_total{engine="0",model_name="m"} 12.0\n' \
           'vllm:spec_decode_num_accepted_tokens_per_pos_total{position="1",engine="0"} 3\nbad line\n'
    m = parse_prometheus(text)
    assert m['vllm:spec_decode_num_drafts_total{engine="0",model_name="m"}'] == 12.0
    assert m['vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",position="1"}'] == 3.0
