"""The API field bugs' proxy faults (glmverify/faultproxy/field_api_faults.py) on recorded answers.

Each rewrite, applied to the reference engine's recorded answers, produces the defect its bug
report names as the harness's own readers see it (``chat`` for chat completions,
``anthropic_stream`` for /v1/messages streams), and only on the requests its ``when`` names.
"""
from __future__ import annotations

import json

import pytest

from glmverify import faultproxy as fp
from glmverify import faults
from glmverify.anthropic_stream import read_lines
from glmverify.chat import StreamAssembler, parse_completion

REC = {d["id"]: d for d in faults.load_recordings()}
BOTH = ["nonstream", "stream"]


def chat_result(rec_id: str, fault: str | None = None):
    d = REC[rec_id]
    text = d["body"] if fault is None else fp.apply(fp.FAULTS[fault], "chat", d["stream"], d["body"])
    if not d["stream"]:
        return parse_completion(json.loads(text))
    asm = StreamAssembler()
    for line in text.splitlines():
        asm.feed_line(line)
    return asm.result()


def messages_body(rec_id: str, fault: str) -> dict:
    return json.loads(fp.apply(fp.FAULTS[fault], "messages", False, REC[rec_id]["body"]))


def messages_stream(rec_id: str, fault: str | None = None):
    text = REC[rec_id]["body"] if fault is None else fp.apply(fp.FAULTS[fault], "messages", True, REC[rec_id]["body"])
    return read_lines(text.splitlines())


ASSISTANT_WITH_REASONING = {"role": "assistant", "content": "", "reasoning_content": "think", "reasoning": "think",
                            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}


def test_reasoning_content_dropped_on_input_only():
    f = fp.FAULTS["reasoning_content_ignored"]
    body = {"model": "m", "messages": [{"role": "user", "content": "q", "reasoning_content": "kept: not an assistant"},
                                       ASSISTANT_WITH_REASONING, {"role": "tool", "tool_call_id": "c1", "content": "r"}]}
    assert f.applies(body)
    out = f.request("/v1/chat/completions", body)
    assert "reasoning_content" not in out["messages"][1] and out["messages"][1]["reasoning"] == "think"
    assert out["messages"][0]["reasoning_content"] == "kept: not an assistant"
    assert body["messages"][1]["reasoning_content"] == "think"  # the caller's body is not changed
    assert not f.applies({"messages": [{"role": "user", "content": "q"},
                                       {"role": "assistant", "content": "a", "reasoning": "r"}]})
    assert not f.touches("chat", False) and not f.touches("chat", True)  # answers go through unchanged


def test_system_in_messages_breaks_tool_use():
    f = fp.FAULTS["messages_system_breaks_tools"]
    assert f.applies({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]})
    assert not f.applies({"system": "s", "messages": [{"role": "user", "content": "u"}]})
    body = messages_body("messages-tool_use-nonstream", "messages_system_breaks_tools")
    assert [b["type"] for b in body["content"]] == ["thinking", "text"] and body["stop_reason"] == "end_turn"
    assert "<tool_call>get_weather<arg_key>city</arg_key>" in body["content"][1]["text"]
    out = messages_stream("messages-tool_use-stream", "messages_system_breaks_tools")
    assert out.problems == []  # the stream stays well formed: only the tool calls are broken
    assert [b["type"] for b in out.blocks] == ["thinking", "text"] and out.stop_reason == "end_turn"
    assert out.blocks[1]["text"].endswith("</tool_call>") and "<tool_call>get_time" in out.blocks[1]["text"]
    # an answer without tool_use is left alone
    assert messages_body("messages-thinking-nonstream", "messages_system_breaks_tools") == \
        json.loads(REC["messages-thinking-nonstream"]["body"])


@pytest.mark.parametrize("mode", BOTH)
def test_bare_request_answer_in_reasoning(mode):
    f = fp.FAULTS["bare_request_not_thinking"]
    assert f.applies({"messages": [{"role": "user", "content": "q"}]})
    assert not f.applies({"messages": [], "chat_template_kwargs": {"enable_thinking": True}})
    base = chat_result(f"chat-reasoning-{mode}")
    got = chat_result(f"chat-reasoning-{mode}", "bare_request_not_thinking")
    assert not (got.content or "").strip() and got.reasoning == base.content
    assert got.reasoning_field == base.reasoning_field and got.problems == []


def test_text_delta_on_the_open_tool_use_block():
    out = messages_stream("messages-tool_use-stream", "anthropic_text_delta_on_tool_use")
    assert out.problems == ["text_delta on the open tool_use block 2 (a tool_use block takes input_json_delta)"]
    # one tool_use block (or none): nothing to do (the report needs two)
    text = REC["messages-thinking-stream"]["body"]
    assert fp.apply(fp.FAULTS["anthropic_text_delta_on_tool_use"], "messages", True, text).replace(" ", "") == text.replace(" ", "")


@pytest.mark.parametrize("mode", BOTH)
def test_reasoning_tokens_over_completion(mode):
    base = chat_result(f"chat-reasoning-{mode}")
    got = chat_result(f"chat-reasoning-{mode}", "usage_reasoning_over_completion")
    assert base.problems == []
    assert len(got.problems) == 1 and "reasoning_tokens" in got.problems[0] and "exceeds completion_tokens" in got.problems[0]
    assert got.usage["completion_tokens"] == base.usage["completion_tokens"]


def test_sglang_style_usage_inflated_in_both_places():
    body = {"choices": [{"message": {"content": "a"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 10, "total_tokens": 15, "reasoning_tokens": 6,
                      "completion_tokens_details": {"reasoning_tokens": 6}}}
    out = json.loads(fp.apply(fp.FAULTS["usage_reasoning_over_completion"], "chat", False, json.dumps(body)))
    assert out["usage"]["reasoning_tokens"] == out["usage"]["completion_tokens_details"]["reasoning_tokens"] == 17
    problems = parse_completion(out).problems
    assert [p.split(" ")[1] for p in problems] == ["completion_tokens_details.reasoning_tokens", "reasoning_tokens"]
