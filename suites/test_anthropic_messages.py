"""anthropic_messages: ``POST /v1/messages`` through the official ``anthropic`` client.

Content blocks come as thinking, then text, then tool_use; ``stop_reason`` is ``end_turn`` or
``tool_use``; tool_use ``input`` validates against the tool's schema. Every stream is read from its
raw events and held to the event grammar (``glmverify.anthropic_stream``: message_start first, per
block content_block_start → deltas of the block's type → content_block_stop with consecutive
indexes, one block open at a time, message_delta carrying stop_reason, message_stop last) with
thinking deltas present (SGLang #26795 dropped them and misnumbered tool_use blocks). The tool case
asks for two calls, so a stream has two tool_use blocks in a row (SGLang #24293 sent a text_delta
on the still-open first one).

Invariants and behaviour are apart (``glmverify.behaviour``): the stream grammar, block order,
no markup, schema-valid ``input`` of an offered tool, unique ids and the stop reason that matches
the blocks hold for every answer; which tools an answer calls is sampled (order, a sentence first,
a clarifying question now and then), so the tool checks decide the rate of answers with the
expected tool_use blocks (as a set) sequentially, streamed and not.

A ``system`` message inside ``messages`` (what Claude Code sends; vLLM #48874 rendered it
mid-conversation and broke tool calls) must still give a tool_use block. Anthropic's own API
refuses that role in ``messages``, but vLLM 0.32 and SGLang 0.5.23 both accept it, and Claude Code
depends on it, so an engine that serves ``/v1/messages`` for it must answer it: a refusal fails the
check with the status, as a broken answer does.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import pytest

from glmverify import behaviour, policy
from glmverify.anthropic_stream import MessagesStreamReader, read_body
from glmverify.chat import MAX_STREAM_EVENTS, MAX_STREAM_SECONDS
from glmverify.checks import THINK_TAGS, TOOL_MARKUP, Failure, conclude, expect
from glmverify.invariants import code_of
from glmverify.verdicts import run_sequential

pytestmark = pytest.mark.feature("anthropic_messages")

TOOLS = json.loads((Path(__file__).parent / "cases" / "tools.json").read_text())
ORDER = {"thinking": 0, "redacted_thinking": 0, "text": 1, "tool_use": 2}
TWO_CALLS = "Call get_weather for city Tokyo and days 2, and also call get_time."
TOOL_USE_LOOKS = (6, 12, 24)   # answers per mode (behaviour.BARS["tool_use"]: 6 of 6 verify)
TOOL_USE_DECISIONS = 4         # two checks, streamed and not: the anthropic part of the behaviour slot


def anthropic_tools(names):
    return [{"name": TOOLS[n]["function"]["name"], "description": TOOLS[n]["function"]["description"],
             "input_schema": TOOLS[n]["function"]["parameters"]} for n in names]


def collect_stream(client, **kw) -> dict:
    """Read a stream's raw events and hold them to the event grammar (``glmverify.anthropic_stream``):
    the SDK's event iterator would parse a text_delta on a tool_use block without complaint."""
    reader = MessagesStreamReader()
    deadline = time.monotonic() + MAX_STREAM_SECONDS
    with client.messages.with_streaming_response.create(stream=True, **kw) as resp:
        for line in resp.iter_lines():
            reader.feed_line(line)
            if len(reader.out.events) > MAX_STREAM_EVENTS or time.monotonic() > deadline:
                reader.out.problems.append(f"stream did not end after {len(reader.out.events)} events")
                break
    out = reader.result()
    return {"blocks": out.blocks, "stop_reason": out.stop_reason, "problems": out.problems, "events": out.summary()}


def nonstream(client, **kw) -> dict:
    """Parsed strictly from the raw body: the SDK hands back a str for a non-JSON body and an
    unvalidated model for JSON of the wrong shape, which would crash instead of failing the check."""
    raw = client.messages.with_raw_response.create(**kw)
    try:
        body = json.loads(raw.http_response.text)
    except ValueError:
        raise Failure(f"/v1/messages: response is not JSON: {raw.http_response.text[:200]!r}",
                      "messages.body_not_json") from None
    read_body(body, kw)  # into the check's ledger: the engine invariants hold on every answer, non-stream too
    content = body.get("content") if isinstance(body, dict) else None
    expect(isinstance(content, list), f"/v1/messages: content is {type(content).__name__}, not a list of blocks: {str(body)[:300]}",
           "body.no_content", type=type(content).__name__)
    blocks = []
    for i, d in enumerate(content):
        expect(isinstance(d, dict) and isinstance(d.get("type"), str), f"/v1/messages: content[{i}] is not a typed block: {str(d)[:200]}",
               "body.block_shape", block=i)
        blocks.append({"type": d["type"], "text": d.get("text", ""), "thinking": d.get("thinking", ""),
                       "name": d.get("name"), "id": d.get("id"), "input": d.get("input")})
    return {"blocks": blocks, "stop_reason": body.get("stop_reason"), "problems": [], "events": None}


def send(engine, stream: bool, **kw) -> dict:
    client = engine.client.anthropic()
    kw.setdefault("model", engine.model)
    kw.setdefault("max_tokens", engine.profile.max_tokens)  # as the chat suites: room for Max reasoning
    return collect_stream(client, **kw) if stream else nonstream(client, **kw)


def no_defects(out: dict, what: str = "") -> None:
    """No stream defect (``anthropic_stream``'s coded problems: the first one's code, all in ``codes``)."""
    problems = out["problems"]
    expect(not problems, f"{what}stream defects: {problems[:5]}", code_of(problems[0]) if problems else None,
           codes={code_of(p) for p in problems})


def check_order(out):
    kinds = [ORDER.get(b["type"], 9) for b in out["blocks"]]
    expect(kinds == sorted(kinds), f"blocks out of order (thinking, text, tool_use): {[b['type'] for b in out['blocks']]}",
           "messages.block_order", types=[b["type"] for b in out["blocks"]])
    for b in out["blocks"]:
        for tag in THINK_TAGS + TOOL_MARKUP:
            expect(tag not in (b.get("text") or "") and tag not in (b.get("thinking") or ""),
                   f"raw {tag!r} in a {b['type']} block", "messages.markup_in_block", tag=tag, block=b["type"])


def test_thinking_then_text(engine, stream, evidence):
    out = send(engine, stream, messages=[{"role": "user", "content": "What is the capital of Italy? One word."}])
    evidence.add(stream=stream, blocks=[{k: v for k, v in b.items() if k != "deltas"} for b in out["blocks"]],
                 stop_reason=out["stop_reason"], events=out["events"])
    no_defects(out)
    types = [b["type"] for b in out["blocks"]]
    expect(types and types[0] == "thinking", f"expected a thinking block first, got {types}",
           "messages.thinking_missing", types=types, stream=stream)
    expect(bool(out["blocks"][0]["thinking"].strip()), "thinking block is empty", "messages.thinking_empty")
    expect("text" in types and any(b["text"].strip() for b in out["blocks"] if b["type"] == "text"),
           f"expected a non-empty text block, got {types}", "messages.text_missing", types=types)
    if stream:
        expect("thinking_delta" in out["blocks"][0]["deltas"], "no thinking_delta in the thinking block",
               "messages.no_thinking_delta")
    check_order(out)
    expect(out["stop_reason"] == "end_turn", f"expected stop_reason end_turn, got {out['stop_reason']!r}",
           "messages.stop_reason", got=out["stop_reason"], expected="end_turn")


def _tool_use_ok(out: dict, offered: list[str], what: str = "") -> list[str]:
    """The invariants of one tool answer (hard, whatever the model sampled): a well-formed stream,
    blocks in order without markup, every tool_use an offered tool with an id and schema-valid
    input, unique ids, ``stop_reason`` ``tool_use`` exactly when there is a tool_use block.
    Returns the tool_use names."""
    no_defects(out, what)
    text = " ".join(b.get("text") or "" for b in out["blocks"] if b["type"] == "text")
    uses = [b for b in out["blocks"] if b["type"] == "tool_use"]
    expect("<tool_call>" not in text, f"{what}raw tool-call markup in a text block and tool_use blocks "
                                      f"{len(uses)}: {text[:200]!r}", "messages.tool_markup_in_text",
           tool_use_blocks=len(uses), system_in_messages=bool(what))
    check_order(out)
    for b in uses:
        expect(b["name"] in offered, f"tool_use name {b['name']!r} not offered", "messages.tool_use_unknown_name",
               name=b["name"])
        expect(bool(b["id"]), f"tool_use block {b['name']} has no id", "messages.tool_use_no_id", name=b["name"])
        try:
            jsonschema.validate(b["input"], TOOLS[b["name"]]["function"]["parameters"])
        except jsonschema.ValidationError as exc:
            raise Failure(f"tool_use {b['name']} input {b['input']} invalid: {exc.message}",
                          "messages.tool_use_input_invalid", name=b["name"], validator=exc.validator) from None
    expect(len({b["id"] for b in uses}) == len(uses), "tool_use ids not unique", "messages.tool_use_duplicate_id")
    want = "tool_use" if uses else "end_turn"
    expect(out["stop_reason"] == want, f"{what}expected stop_reason {want}, got {out['stop_reason']!r}",
           "messages.stop_reason", got=out["stop_reason"], expected=want)
    return [b["name"] for b in uses]


def _tool_use_rate(engine, stream: bool, evidence, *, offered: list[str], expected: list[str], what: str, **kw) -> None:
    """Which tools the answers call is behaviour: a rate over answers drawn until it decides
    (``behaviour.BARS["tool_use"]``, looks ``TOOL_USE_LOOKS``); every answer held to ``_tool_use_ok``."""
    from concurrent.futures import ThreadPoolExecutor

    outs: list[dict] = []

    def draw(k: int):
        with ThreadPoolExecutor(max_workers=min(k, 8)) as pool:
            got = list(pool.map(lambda _: send(engine, stream, tools=anthropic_tools(offered), **kw), range(k)))
        outs.extend(got)
        return [sorted(_tool_use_ok(o, offered, what)) == sorted(expected) for o in got], k

    part = behaviour.part_alpha(engine.row, policy.alpha(engine.row, policy.rendered_prompt(engine.client.engine)))
    rule = behaviour.rate_rule("tool_use", part / TOOL_USE_DECISIONS, TOOL_USE_LOOKS,
                               name=f"anthropic_messages[tool_use:{what.strip(': ') or 'two calls'}:{'stream' if stream else 'non-stream'}]")
    decision, values = run_sequential(rule, draw)
    got = [[b["type"] for b in o["blocks"]] for o, ok in zip(outs, values) if not ok]
    evidence.add(stream=stream, answers=len(outs), blocks=[{k: v for k, v in b.items() if k != "deltas"} for b in outs[0]["blocks"]],
                 stop_reason=outs[0]["stop_reason"], events=outs[0]["events"], misses=got[:5])
    conclude(decision, evidence=evidence, code="messages.tool_use_rate_below_bar",
             context=f"{what}no tool_use block with the expected tools {expected}" + (f" (got {got[0]})" if got else ""))


@pytest.mark.behaviour
def test_tool_use(engine, stream, evidence):
    """Two calls: two tool_use blocks in a row (a stream must close the first before the second).
    The invariants hold for every answer; the two calls (as a set) are a rate."""
    _tool_use_rate(engine, stream, evidence, offered=["get_weather", "get_time"], expected=["get_time", "get_weather"],
                   what="", messages=[{"role": "user", "content": TWO_CALLS}])


@pytest.mark.behaviour
def test_tool_use_system_in_messages(engine, stream, evidence):
    """A system message as the first entry of ``messages`` (Claude Code's request): no call
    markup in text and the invariants on every answer (hard); the tool_use block, a rate."""
    import anthropic

    try:
        _tool_use_rate(engine, stream, evidence, offered=["get_weather"], expected=["get_weather"],
                       what="with a system message inside messages: ",
                       messages=[{"role": "system", "content": "You are a coding agent. Use the tools when asked."},
                                 {"role": "user", "content": "Call get_weather for city Tokyo and days 2."}])
    except anthropic.APIStatusError as exc:
        raise Failure(f"system message inside messages refused: HTTP {exc.status_code}: "
                      f"{str(exc.message)[:200]} (Claude Code sends it)", "messages.system_in_messages_refused",
                      status=exc.status_code) from None
