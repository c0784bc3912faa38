"""The fault proxy's rewrites, without an engine or a server.

Every proxy rewrite, applied to answers recorded from the reference engine
(fixtures/faultproxy_recordings.jsonl.gz, ``python -m glmverify.faults record``), produces the
defect it names, as the harness's own parsers (glmverify.chat) see it; controls change nothing a
client may notice; each fault touches only the answers it names. The proxy over HTTP and the
catalogue's runner are in tests/integration/test_faults.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from glmverify import faultproxy as fp
from glmverify import faults
from glmverify.chat import StreamAssembler, parse_completion
from glmverify.client import parse_prometheus


TOOLS = json.loads((Path(__file__).resolve().parents[2] / "suites" / "cases" / "tools.json").read_text())
REC = {d["id"]: d for d in faults.load_recordings()}


def assemble(text: str):
    asm = StreamAssembler()
    for line in text.splitlines():
        asm.feed_line(line)
    return asm.result()


def result(rec_id: str, fault: str | fp.Fault | None = None):
    """The recorded answer, rewritten by ``fault``, as the harness parses it."""
    d = REC[rec_id]
    text = d["body"] if fault is None else fp.apply(fp.FAULTS[fault] if isinstance(fault, str) else fault,
                                                    d["kind"], d["stream"], d["body"])
    return assemble(text) if d["stream"] else parse_completion(json.loads(text))


BOTH = ["nonstream", "stream"]


def test_recordings_are_conforming():
    for mode in BOTH:
        r = result(f"chat-reasoning-{mode}")
        assert r.reasoning and r.content and not r.problems and r.finish_reason == "stop", mode
        t = result(f"chat-tools-{mode}")
        assert [c.name for c in t.tool_calls] == ["get_weather", "get_time"] and t.finish_reason == "tool_calls"
        assert t.tool_calls[0].parsed() == {"city": "Tokyo", "days": 2} and not t.problems
        e = result(f"chat-exact_string-{mode}")
        assert e.tool_calls[0].parsed() == {"text": "  two leading spaces  "}


@pytest.mark.parametrize("mode", BOTH)
def test_controls_change_nothing_a_client_sees(mode):
    for rec in ("chat-reasoning", "chat-tools", "chat-exact_string"):
        base = result(f"{rec}-{mode}")
        for f in ("control_passthrough", "control_rechunk"):
            got = result(f"{rec}-{mode}", f)
            assert (got.content, got.reasoning, got.finish_reason, got.problems) == \
                   (base.content, base.reasoning, base.finish_reason, base.problems), (rec, f)
            assert [(c.id, c.name, c.arguments) for c in got.tool_calls] == [(c.id, c.name, c.arguments) for c in base.tool_calls]
    if mode == "stream":
        before = REC["chat-tools-stream"]["body"].count("data:")
        after = fp.apply(fp.FAULTS["control_rechunk"], "chat", True, REC["chat-tools-stream"]["body"]).count("data:")
        assert after < before / 4, (before, after)  # really re-chunked


@pytest.mark.parametrize("mode", BOTH)
@pytest.mark.parametrize("fault", ["reasoning_renamed", "reasoning_dropped"])
def test_reasoning_field_faults(fault, mode):
    r = result(f"chat-reasoning-{mode}", fault)
    assert r.reasoning is None and r.content
    text = fp.apply(fp.FAULTS[fault], "chat", mode == "stream", REC[f"chat-reasoning-{mode}"]["body"])
    assert ('"reasoning_text"' in text) == (fault == "reasoning_renamed")


@pytest.mark.parametrize("mode", BOTH)
def test_think_tag_in_content(mode):
    r = result(f"chat-reasoning-{mode}", "think_tag_in_content")
    assert r.content.startswith("</think>") and r.reasoning


@pytest.mark.parametrize("mode", BOTH)
def test_tool_markup_in_content(mode):
    r = result(f"chat-tools-{mode}", "tool_markup_in_content")
    assert not r.tool_calls and r.finish_reason == "stop" and not r.problems
    assert r.content.endswith("<tool_call>get_weather<arg_key>city</arg_key><arg_value>Tokyo</arg_value>"
                              "<arg_key>days</arg_key><arg_value>2</arg_value></tool_call><tool_call>get_time</tool_call>")


def _valid(call) -> bool:
    try:
        jsonschema.validate(json.loads(call.arguments), TOOLS[call.name]["function"]["parameters"])
        return True
    except (ValueError, jsonschema.ValidationError, KeyError):
        return False


@pytest.mark.parametrize("mode", BOTH)
def test_argument_faults(mode):
    untyped = result(f"chat-tools-{mode}", "args_untyped")
    assert untyped.tool_calls[0].parsed() == {"city": "Tokyo", "days": "2"} and not _valid(untyped.tool_calls[0])
    bad = result(f"chat-tools-{mode}", "args_invalid_json")
    for call in bad.tool_calls:
        with pytest.raises(ValueError):
            json.loads(call.arguments)
    missing = result(f"chat-tools-{mode}", "args_schema_invalid")
    assert missing.tool_calls[0].parsed() == {"days": 2} and not _valid(missing.tool_calls[0])
    stripped = result(f"chat-exact_string-{mode}", "args_whitespace_stripped")
    assert stripped.tool_calls[0].parsed() == {"text": "two leading spaces"}
    named = result(f"chat-tools-{mode}", "unknown_tool_name")
    assert [c.name for c in named.tool_calls] == ["functions.get_weather", "functions.get_time"]


@pytest.mark.parametrize("mode", BOTH)
def test_wrong_finish_reason(mode):
    assert result(f"chat-tools-{mode}", "finish_stop_after_tool_calls").finish_reason == "stop"
    assert result(f"chat-reasoning-{mode}", "finish_stop_after_tool_calls").finish_reason == "stop"
    assert result(f"chat-reasoning-{mode}", "finish_length_after_answer").finish_reason == "length"
    assert result(f"chat-tools-{mode}", "finish_length_after_answer").finish_reason == "tool_calls"


THINK_OFF = {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [TOOLS["get_weather"]],
             "chat_template_kwargs": {"enable_thinking": False}}


@pytest.mark.parametrize("mode", BOTH)
def test_faults_scoped_to_some_requests(mode):
    # thinking off with tools: the calls become raw markup; other requests are left alone
    f = fp.FAULTS["tools_markup_thinking_off"]
    assert f.applies(THINK_OFF) and not f.applies(REC[f"chat-tools-{mode}"]["request"])
    got = result(f"chat-tools-{mode}", f)
    assert not got.tool_calls and "<tool_call>" in got.content and got.finish_reason == "stop"
    # tool_choice none: forwarded as auto, the call left as markup
    f = fp.FAULTS["tool_choice_none_ignored"]
    none = {**THINK_OFF, "tool_choice": "none"}
    assert f.applies(none) and not f.applies(REC[f"chat-tools-{mode}"]["request"])
    assert f.request("/v1/chat/completions", none)["tool_choice"] == "auto"
    # multi-turn: reasoning merged into content behind </think>
    f = fp.FAULTS["multi_turn_unsplit"]
    history = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                            {"role": "user", "content": "c"}]}
    assert f.applies(history) and not f.applies(REC[f"chat-reasoning-{mode}"]["request"])
    base, got = result(f"chat-reasoning-{mode}"), result(f"chat-reasoning-{mode}", f)
    assert not got.reasoning and got.content == base.reasoning + "</think>" + base.content


def test_tool_results_emptied_and_over_limit_500():
    f = fp.FAULTS["tool_results_emptied"]
    body = {"messages": [{"role": "user", "content": "a"}, {"role": "tool", "tool_call_id": "1", "content": "391"}]}
    assert f.applies(body) and not f.applies({"messages": [{"role": "user", "content": "a"}]})
    out = f.request("/v1/chat/completions", body)
    assert out["messages"][1] == {"role": "tool", "tool_call_id": "1", "content": ""} and body["messages"][1]["content"] == "391"
    f = fp.FAULTS["over_limit_500"]
    msg = json.dumps({"error": {"message": "This model's maximum context length is 16384 tokens. However, ..."}})
    assert f.error(400, msg)[0] == 500
    assert f.error(400, '{"error": {"message": "tools must be a list"}}')[0] == 400


def test_stream_chunk_faults():
    base = result("chat-tools-stream")
    dropped = result("chat-tools-stream", "stream_chunk_dropped")
    assert [c.arguments for c in dropped.tool_calls] != [c.arguments for c in base.tool_calls]
    assert not all(_valid(c) for c in dropped.tool_calls) or dropped.tool_calls[0].parsed() != base.tool_calls[0].parsed()
    reordered = result("chat-tools-stream", "stream_chunk_reordered")
    assert not _valid(reordered.tool_calls[0])
    resplit = result("chat-tools-stream", "stream_chunk_resplit")
    assert any("sent twice" in p for p in resplit.problems), resplit.problems
    content = result("chat-reasoning-stream", "stream_content_chunk_dropped")
    assert content.content and content.content != base_content() and not content.problems


def base_content() -> str:
    return result("chat-reasoning-stream").content


def test_stream_framing_faults():
    truncated = result("chat-reasoning-stream", "stream_truncated")
    assert "stream ended without data: [DONE]" in truncated.problems and truncated.finish_reason is None
    malformed = result("chat-reasoning-stream", "stream_malformed_json")
    assert any(p.startswith("malformed JSON in stream event") for p in malformed.problems)
    late = result("chat-reasoning-stream", "reasoning_after_content")
    assert any("reasoning delta after content" in p for p in late.problems)
    assert late.reasoning == result("chat-reasoning-stream").reasoning[:-1] + late.reasoning[-1]


def _blocks(events: list[fp.Event]) -> list[tuple[int, str]]:
    return [(e.data["index"], e.data["content_block"]["type"]) for e in events
            if isinstance(e.data, dict) and e.data.get("type") == "content_block_start"]


def test_anthropic_faults():
    body = json.loads(fp.apply(fp.FAULTS["anthropic_thinking_dropped"], "messages", False, REC["messages-thinking-nonstream"]["body"]))
    assert [b["type"] for b in body["content"]] == ["text"]
    ev = fp.parse_sse(fp.apply(fp.FAULTS["anthropic_thinking_dropped"], "messages", True, REC["messages-tool_use-stream"]["body"]))
    assert _blocks(ev) == [(0, "text"), (1, "tool_use"), (2, "tool_use")]  # well formed, thinking gone
    assert not [e for e in ev if isinstance(e.data, dict) and (e.data.get("delta") or {}).get("type") == "thinking_delta"]
    assert _blocks(fp.parse_sse(REC["messages-tool_use-stream"]["body"])) == [(0, "thinking"), (1, "text"), (2, "tool_use"), (3, "tool_use")]
    mis = fp.parse_sse(fp.apply(fp.FAULTS["anthropic_tool_use_misnumbered"], "messages", True, REC["messages-tool_use-stream"]["body"]))
    assert _blocks(mis) == [(0, "thinking"), (1, "text"), (3, "tool_use"), (4, "tool_use")]
    # every delta and stop moved with its block
    assert {e.data["index"] for e in mis if isinstance(e.data, dict) and e.data.get("type") == "content_block_stop"} == {0, 1, 3, 4}


def _drafts(text: str) -> float | None:
    found = [v for k, v in parse_prometheus(text).items() if k.startswith("vllm:spec_decode_num_drafts_total")]
    return sum(found) if found else None


def test_metrics_faults():
    before, after = REC["metrics-before"]["body"], REC["metrics"]["body"]  # reference-ngram, around a workload
    assert _drafts(after) > _drafts(before) is not None
    missing = fp.apply(fp.FAULTS["spec_metrics_missing"], "metrics", False, after)
    assert _drafts(missing) is None and not [k for k in parse_prometheus(missing) if "spec_decode" in k]
    state: dict = {}
    frozen = [fp.apply(fp.FAULTS["spec_metrics_frozen"], "metrics", False, t, state) for t in (before, after)]
    assert _drafts(frozen[1]) == _drafts(frozen[0]) == _drafts(before)


def test_standin_request_injection():
    hook = fp.FAULTS["standin_skip_think_end"].request
    assert hook("/v1/chat/completions", {"model": "m"})["vllm_xargs"] == {"glm_standin_faults": "skip_think_end"}
    merged = hook("/v1/chat/completions", {"vllm_xargs": {"glm_standin_faults": "wrong_answers", "x": 1}})
    assert merged["vllm_xargs"] == {"glm_standin_faults": "wrong_answers,skip_think_end", "x": 1}


def test_sse_round_trip_is_exact():
    for rid in ("chat-tools-stream", "messages-tool_use-stream"):
        text = REC[rid]["body"]
        assert fp.render_sse(fp.parse_sse(text)).replace(" ", "") == text.replace(" ", "")

def test_fault_answer_hooks():
    f = fp.FAULTS["spec_metrics_missing"]
    assert f.answer_hook("metrics", False) is f.metrics and f.touches("metrics", False)
    assert not f.touches("chat", False) and not f.touches("metrics", True)
    rechunk = fp.FAULTS["control_rechunk"]
    assert rechunk.touches("chat", True) and not rechunk.touches("chat", False)
