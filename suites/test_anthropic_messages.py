"""anthropic_messages: ``POST /v1/messages`` through the official ``anthropic`` client.

Content blocks come as thinking, then text, then tool_use; ``stop_reason`` is ``end_turn`` or
``tool_use``; tool_use ``input`` validates against the tool's schema. A stream's events come in the
documented order (message_start, per block content_block_start → deltas → content_block_stop with
consecutive indexes, message_delta carrying stop_reason, message_stop) with thinking deltas present
(SGLang #26795 dropped them and misnumbered tool_use blocks).
"""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from glmverify.checks import THINK_TAGS, TOOL_MARKUP, expect

pytestmark = pytest.mark.feature("anthropic_messages")

TOOLS = json.loads((Path(__file__).parent / "cases" / "tools.json").read_text())
ORDER = {"thinking": 0, "redacted_thinking": 0, "text": 1, "tool_use": 2}
DELTA_FOR = {"thinking": {"thinking_delta", "signature_delta"}, "text": {"text_delta"}, "tool_use": {"input_json_delta"}}


def anthropic_tools(names):
    return [{"name": TOOLS[n]["function"]["name"], "description": TOOLS[n]["function"]["description"],
             "input_schema": TOOLS[n]["function"]["parameters"]} for n in names]


def collect_stream(client, **kw) -> dict:
    """Replay a stream into blocks, checking event order as it goes."""
    blocks: dict[int, dict] = {}
    problems: list[str] = []
    names: list[str] = []
    open_index = None
    stop_reason = None
    with client.messages.create(stream=True, **kw) as stream:
        for ev in stream:
            names.append(ev.type)
            if len(names) == 1 and ev.type != "message_start":
                problems.append(f"first event is {ev.type}, not message_start")
            if ev.type == "content_block_start":
                if open_index is not None:
                    problems.append(f"block {ev.index} started while block {open_index} is open")
                if ev.index != len(blocks):
                    problems.append(f"block index {ev.index}, expected {len(blocks)} (misnumbered blocks)")
                block = ev.content_block.model_dump()
                blocks[ev.index] = {"type": block["type"], "text": "", "thinking": "", "json": "",
                                    "name": block.get("name"), "id": block.get("id"), "deltas": set()}
                open_index = ev.index
            elif ev.type == "content_block_delta":
                b = blocks.get(ev.index)
                if b is None or ev.index != open_index:
                    problems.append(f"delta for block {ev.index} which is not open")
                    continue
                d = ev.delta
                b["deltas"].add(d.type)
                if d.type not in DELTA_FOR.get(b["type"], set()):
                    problems.append(f"{d.type} inside a {b['type']} block")
                b["text"] += getattr(d, "text", "") or ""
                b["thinking"] += getattr(d, "thinking", "") or ""
                b["json"] += getattr(d, "partial_json", "") or ""
            elif ev.type == "content_block_stop":
                if ev.index != open_index:
                    problems.append(f"stop for block {ev.index} while {open_index} is open")
                open_index = None
            elif ev.type == "message_delta":
                stop_reason = ev.delta.stop_reason
            elif ev.type == "message_stop":
                pass
    if not names or names[-1] != "message_stop":
        problems.append(f"stream did not end with message_stop (last: {names[-1] if names else None})")
    if "message_delta" not in names:
        problems.append("no message_delta event")
    out = []
    for i in sorted(blocks):
        b = blocks[i]
        if b["type"] == "tool_use":
            try:
                b["input"] = json.loads(b["json"]) if b["json"].strip() else {}
            except ValueError:
                problems.append(f"tool_use block {i}: input_json_delta fragments are not JSON: {b['json'][:200]!r}")
                b["input"] = None
        b["deltas"] = sorted(b["deltas"])
        out.append(b)
    return {"blocks": out, "stop_reason": stop_reason, "problems": problems, "events": names[:12] + ["…"] + names[-3:]}


def nonstream(client, **kw) -> dict:
    """Parsed strictly from the raw body: the SDK hands back a str for a non-JSON body and an
    unvalidated model for JSON of the wrong shape, which would crash instead of failing the check."""
    raw = client.messages.with_raw_response.create(**kw)
    try:
        body = json.loads(raw.http_response.text)
    except ValueError:
        raise AssertionError(f"/v1/messages: response is not JSON: {raw.http_response.text[:200]!r}") from None
    content = body.get("content") if isinstance(body, dict) else None
    expect(isinstance(content, list), f"/v1/messages: content is {type(content).__name__}, not a list of blocks: {str(body)[:300]}")
    blocks = []
    for i, d in enumerate(content):
        expect(isinstance(d, dict) and isinstance(d.get("type"), str), f"/v1/messages: content[{i}] is not a typed block: {str(d)[:200]}")
        blocks.append({"type": d["type"], "text": d.get("text", ""), "thinking": d.get("thinking", ""),
                       "name": d.get("name"), "id": d.get("id"), "input": d.get("input")})
    return {"blocks": blocks, "stop_reason": body.get("stop_reason"), "problems": [], "events": None}


def send(engine, stream: bool, **kw) -> dict:
    client = engine.client.anthropic()
    kw.setdefault("model", engine.model)
    kw.setdefault("max_tokens", engine.profile.max_tokens)  # as the chat suites: room for Max reasoning
    return collect_stream(client, **kw) if stream else nonstream(client, **kw)


def check_order(out):
    kinds = [ORDER.get(b["type"], 9) for b in out["blocks"]]
    expect(kinds == sorted(kinds), f"blocks out of order (thinking, text, tool_use): {[b['type'] for b in out['blocks']]}")
    for b in out["blocks"]:
        for tag in THINK_TAGS + TOOL_MARKUP:
            expect(tag not in (b.get("text") or "") and tag not in (b.get("thinking") or ""),
                   f"raw {tag!r} in a {b['type']} block")


def test_thinking_then_text(engine, stream, evidence):
    out = send(engine, stream, messages=[{"role": "user", "content": "What is the capital of Italy? One word."}])
    evidence.add(stream=stream, blocks=[{k: v for k, v in b.items() if k != "deltas"} for b in out["blocks"]],
                 stop_reason=out["stop_reason"], events=out["events"])
    expect(not out["problems"], f"stream defects: {out['problems'][:5]}")
    types = [b["type"] for b in out["blocks"]]
    expect(types and types[0] == "thinking", f"expected a thinking block first, got {types}")
    expect(bool(out["blocks"][0]["thinking"].strip()), "thinking block is empty")
    expect("text" in types and any(b["text"].strip() for b in out["blocks"] if b["type"] == "text"),
           f"expected a non-empty text block, got {types}")
    if stream:
        expect("thinking_delta" in out["blocks"][0]["deltas"], "no thinking_delta in the thinking block")
    check_order(out)
    expect(out["stop_reason"] == "end_turn", f"expected stop_reason end_turn, got {out['stop_reason']!r}")


def test_tool_use(engine, stream, evidence):
    names = ["get_weather", "get_time"]
    out = send(engine, stream, tools=anthropic_tools(names),
               messages=[{"role": "user", "content": "Call get_weather for city Tokyo and days 2, and also call get_time."}])
    evidence.add(stream=stream, blocks=[{k: v for k, v in b.items() if k != "deltas"} for b in out["blocks"]],
                 stop_reason=out["stop_reason"], events=out["events"])
    expect(not out["problems"], f"stream defects: {out['problems'][:5]}")
    check_order(out)
    uses = [b for b in out["blocks"] if b["type"] == "tool_use"]
    expect(len(uses) == 2, f"expected two tool_use blocks, got {[b['type'] for b in out['blocks']]}")
    for b in uses:
        expect(b["name"] in names, f"tool_use name {b['name']!r} not offered")
        expect(bool(b["id"]), f"tool_use block {b['name']} has no id")
        try:
            jsonschema.validate(b["input"], TOOLS[b["name"]]["function"]["parameters"])
        except jsonschema.ValidationError as exc:
            raise AssertionError(f"tool_use {b['name']} input {b['input']} invalid: {exc.message}") from None
    expect(len({b["id"] for b in uses}) == len(uses), "tool_use ids not unique")
    expect(out["stop_reason"] == "tool_use", f"expected stop_reason tool_use, got {out['stop_reason']!r}")
