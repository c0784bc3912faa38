"""The /v1/messages stream grammar (glmverify/anthropic_stream.py) on hand-written event lists.

A good stream (thinking, text, two tool_use blocks, pings) has no problem; each bad one breaks one
rule and the problem names it. The reference engine's recorded streams are good.
"""
from __future__ import annotations

import json

import pytest

from glmverify import faults
from glmverify.anthropic_stream import grammar_problems, read_events, read_lines


def start(i, kind, **extra):
    block = {"type": kind, **({"text": ""} if kind == "text" else {}), **({"thinking": ""} if kind == "thinking" else {}),
             **({"input": {}} if kind == "tool_use" else {}), **extra}
    return {"type": "content_block_start", "index": i, "content_block": block}


def delta(i, kind, **d):
    return {"type": "content_block_delta", "index": i, "delta": {"type": kind, **d}}


def stop(i):
    return {"type": "content_block_stop", "index": i}


MSG_START = {"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant", "content": [],
                                                  "usage": {"input_tokens": 10, "output_tokens": 0}}}
MSG_DELTA = {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}}
MSG_STOP = {"type": "message_stop"}
PING = {"type": "ping"}


def good():
    return [MSG_START, PING,
            start(0, "thinking"), delta(0, "thinking_delta", thinking="Let me "), delta(0, "thinking_delta", thinking="think."),
            delta(0, "signature_delta", signature="sig"), stop(0),
            start(1, "text"), delta(1, "text_delta", text="Calling."), stop(1), PING,
            start(2, "tool_use", id="t1", name="get_weather"), delta(2, "input_json_delta", partial_json='{"city": '),
            delta(2, "input_json_delta", partial_json='"Tokyo"}'), stop(2),
            start(3, "tool_use", id="t2", name="get_time"), delta(3, "input_json_delta", partial_json=""), stop(3),
            MSG_DELTA, MSG_STOP]


def test_good_stream_rebuilt():
    out = read_events((None, e) for e in good())
    assert out.problems == []
    assert [b["type"] for b in out.blocks] == ["thinking", "text", "tool_use", "tool_use"]
    assert out.blocks[0]["thinking"] == "Let me think." and out.blocks[0]["signature"] == "sig"
    assert out.blocks[0]["deltas"] == ["signature_delta", "thinking_delta"]
    assert out.blocks[2]["input"] == {"city": "Tokyo"} and out.blocks[3]["input"] == {}
    assert out.stop_reason == "tool_use" and out.usage == {"input_tokens": 10, "output_tokens": 30}


def _without(events, i):
    return events[:i] + events[i + 1:]


def _insert(events, i, ev):
    return events[:i] + [ev] + events[i:]


BAD = {
    # SGLang #24293: a text_delta on the still-open first tool_use block
    "text_delta on the open tool_use block 2": lambda e: _insert(e, 14, delta(2, "text_delta", text="\n")),
    "input_json_delta on the open text block 1": lambda e: _insert(e, 9, delta(1, "input_json_delta", partial_json="{}")),
    "text_delta on the open thinking block 0": lambda e: _insert(e, 3, delta(0, "text_delta", text="x")),
    "first event is content_block_start, not message_start": lambda e: e[2:],
    "message_start sent twice": lambda e: _insert(e, 1, MSG_START),
    # SGLang #26795: a block number skipped
    "block index 3, expected 2 (misnumbered blocks)": lambda e: [
        {**x, "index": x["index"] + 1} if isinstance(x.get("index"), int) and x["index"] >= 2 else x for x in e],
    "block 1 started while block 0 is open": lambda e: _without(e, 6),
    "delta for block 0 which is not open": lambda e: _insert(e, 9, delta(0, "thinking_delta", thinking="late")),
    "block 3 (tool_use) never stopped": lambda e: _without(e, 17),
    "message_delta while block 3 (tool_use) is still open": lambda e: _without(e, 17),
    "no message_delta event (no stop_reason)": lambda e: _without(e, 18),
    "message_delta without a stop_reason": lambda e: e[:18] + [{"type": "message_delta", "delta": {}}] + e[19:],
    "stream did not end with message_stop (last: message_delta)": lambda e: e[:-1],
    "content_block_start after message_stop": lambda e: e + [start(4, "text")],
    "content_block_start for block 4 after message_delta": lambda e: e[:19] + [start(4, "text"), stop(4)] + e[19:],
    "unknown event type 'content_block_end'": lambda e: _insert(e, 5, {"type": "content_block_end", "index": 0}),
    "error event in stream": lambda e: _insert(e, 5, {"type": "error", "error": {"type": "overloaded_error"}}),
    "tool_use block 2: input_json_delta fragments are not JSON": lambda e: _without(e, 13),
    "block 4 has an unknown type": lambda e: e[:18] + [start(4, "image"), stop(4)] + e[18:],
}


@pytest.mark.parametrize("needle", list(BAD))
def test_each_broken_rule_is_named(needle):
    problems = grammar_problems(BAD[needle](good()))
    assert any(needle in p for p in problems), problems
    # every grammar defect is a coded engine invariant (glmverify.invariants), judged per check
    assert all(p.code.startswith("messages.") for p in problems), [(p.code, p) for p in problems]


def test_lines_sse_framing():
    events = good()
    lines = []
    for e in events:
        lines += [f"event: {e['type']}", f"data: {json.dumps(e)}", ""]
    assert read_lines(lines).problems == []
    lines[1 * 3] = "event: message_start"  # event name of the ping changed
    assert any("SSE event name 'message_start' but data type 'ping'" in p for p in read_lines(lines).problems)
    broken = read_lines(["event: message_start", "data: {not json", ""])
    assert any("is not JSON" in p for p in broken.problems)
    assert read_lines([]).problems[0] == "empty stream: no events"


def test_recorded_reference_streams_are_good():
    for rec in faults.load_recordings():
        if rec["kind"] == "messages" and rec["stream"]:
            out = read_lines(rec["body"].splitlines())
            assert out.problems == [] and out.blocks[0]["type"] == "thinking", rec["id"]
