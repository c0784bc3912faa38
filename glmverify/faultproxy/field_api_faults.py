"""Field bugs (issue: bugs from the field) reproduced at the HTTP API: reasoning names on input, the
Anthropic ``/v1/messages`` system message and stream grammar, thinking by default, usage counts.

* ``reasoning_content_ignored`` (vLLM #38488): an engine reading earlier reasoning only from
  ``reasoning``: the request's ``reasoning_content`` is dropped from assistant messages before it
  is forwarded, so the template never sees it (visible only as fewer ``prompt_tokens``).
* ``messages_system_breaks_tools`` (vLLM #48874): on ``/v1/messages`` requests with a ``system``
  message inside ``messages``, tool calls are not parsed: the call arrives as raw GLM markup in a
  text block, no tool_use block, ``stop_reason`` end_turn.
* ``bare_request_not_thinking`` (SGLang #26036): a chat request without ``chat_template_kwargs``
  no longer thinks and the parser puts the whole answer in the reasoning field; content is empty.
* ``anthropic_text_delta_on_tool_use`` (SGLang #24293): a stream with two tool_use blocks sends a
  ``text_delta`` on the first while it is still open (the text between the two calls).
* ``usage_reasoning_over_completion`` (SGLang #39826): usage's reasoning tokens exceed the
  completion tokens, wherever the engine reports them (vLLM: ``completion_tokens_details``;
  SGLang: there and top-level ``reasoning_tokens``).

Answer rewrites keep everything else well formed (stream grammar, block numbering), so only the
defect named is visible.
"""
from __future__ import annotations

import json
from typing import Any

from .bodies import REASONING_FIELDS, chat_deltas, glm_markup, message_of
from .registry import fault
from .sse import Event


# -- vLLM #38488: reasoning_content not read on input
def _carries_reasoning_content(body: dict) -> bool:
    return any(isinstance(m, dict) and m.get("role") == "assistant" and "reasoning_content" in m
               for m in body.get("messages") or [])


def _drop_reasoning_content(path: str, body: dict) -> dict:
    msgs = [{k: v for k, v in m.items() if k != "reasoning_content"} if isinstance(m, dict) and m.get("role") == "assistant"
            else m for m in body.get("messages") or []]
    return {**body, "messages": msgs}


fault("reasoning_content_ignored", "earlier reasoning sent back as reasoning_content is dropped on input "
      "(only 'reasoning' read): the template never sees it", "vLLM #38488",
      request=_drop_reasoning_content, when=_carries_reasoning_content)


# -- vLLM #48874: a system message inside /v1/messages' messages breaks tool calls
def _system_in_messages(body: dict) -> bool:
    return any(isinstance(m, dict) and m.get("role") == "system" for m in body.get("messages") or [])


def _tool_markup(block: dict, args: Any) -> str:
    return glm_markup(block.get("name"), args if isinstance(args, str) else json.dumps(args or {}))


def _tool_use_to_text(body: dict) -> dict:
    content = body.get("content")
    if not isinstance(content, list) or not any(isinstance(b, dict) and b.get("type") == "tool_use" for b in content):
        return body
    raw = "".join(_tool_markup(b, b.get("input")) for b in content if isinstance(b, dict) and b.get("type") == "tool_use")
    kept = [b for b in content if not (isinstance(b, dict) and b.get("type") == "tool_use")]
    text = next((b for b in kept if isinstance(b, dict) and b.get("type") == "text"), None)
    if text is None:
        kept.append({"type": "text", "text": raw})
    else:
        text["text"] = (text.get("text") or "") + raw
    body["content"] = kept
    if body.get("stop_reason") == "tool_use":
        body["stop_reason"] = "end_turn"
    return body


def _data(ev: Event) -> dict:
    return ev.data if isinstance(ev.data, dict) else {}


def _tool_use_to_text_stream(events: list[Event]) -> list[Event]:
    """tool_use blocks' events removed, their calls appended as markup to the text block (a new text
    block where there is none), later blocks renumbered, stop_reason end_turn."""
    tools: dict[int, dict] = {}
    for ev in events:
        d = _data(ev)
        if d.get("type") == "content_block_start" and (d.get("content_block") or {}).get("type") == "tool_use":
            tools[d.get("index")] = {"block": d["content_block"], "json": ""}
        elif d.get("type") == "content_block_delta" and d.get("index") in tools:
            tools[d["index"]]["json"] += (d.get("delta") or {}).get("partial_json") or ""
    if not tools:
        return events
    raw = "".join(_tool_markup(t["block"], t["json"]) for _, t in sorted(tools.items(), key=lambda kv: kv[0]))
    text_idx = next((_data(e).get("index") for e in events if _data(e).get("type") == "content_block_start"
                     and (_data(e).get("content_block") or {}).get("type") == "text"), None)
    out: list[Event] = []
    added = False
    for ev in events:
        d = _data(ev)
        kind = d.get("type")
        if kind in ("content_block_start", "content_block_delta", "content_block_stop") and d.get("index") in tools:
            continue
        if kind == "content_block_stop" and text_idx is not None and d.get("index") == text_idx and not added:
            out.append(Event({"type": "content_block_delta", "index": text_idx,
                              "delta": {"type": "text_delta", "text": raw}}, "content_block_delta"))
            added = True
        if kind == "message_delta" and not added:  # no text block: the markup gets one of its own
            idx = sum(1 for e in out if _data(e).get("type") == "content_block_start")
            out += [Event({"type": "content_block_start", "index": idx, "content_block": {"type": "text", "text": ""}},
                          "content_block_start"),
                    Event({"type": "content_block_delta", "index": idx, "delta": {"type": "text_delta", "text": raw}},
                          "content_block_delta"),
                    Event({"type": "content_block_stop", "index": idx}, "content_block_stop")]
            added = True
        if kind == "message_delta" and (d.get("delta") or {}).get("stop_reason") == "tool_use":
            d["delta"]["stop_reason"] = "end_turn"
        if isinstance(d.get("index"), int):  # blocks after a removed tool_use move down
            d["index"] -= sum(1 for t in tools if isinstance(t, int) and t < d["index"])
        out.append(ev)
    return out


fault("messages_system_breaks_tools", "/v1/messages with a system message inside messages: tool calls left as raw "
      "markup in a text block, no tool_use, stop_reason end_turn", "vLLM #48874",
      messages=_tool_use_to_text, messages_stream=_tool_use_to_text_stream, when=_system_in_messages)


# -- SGLang #26036: a bare request no longer thinks; the answer lands in the reasoning field
def _bare(body: dict) -> bool:
    return "chat_template_kwargs" not in body and isinstance(body.get("messages"), list)


def _answer_in_reasoning_message(body: dict) -> dict:
    m = message_of(body)
    if m is None or not m.get("content"):
        return body
    field = next((f for f in REASONING_FIELDS if f in m), "reasoning_content")
    for f in REASONING_FIELDS:
        m.pop(f, None)
    m[field] = m["content"]
    m["content"] = ""
    return body


def _answer_in_reasoning_stream(events: list[Event]) -> list[Event]:
    field = next((f for _, _, d in chat_deltas(events) for f in REASONING_FIELDS if d.get(f)), "reasoning_content")
    if not any(d.get("content") for _, _, d in chat_deltas(events)):
        return events
    for _, _, d in chat_deltas(events):
        for f in REASONING_FIELDS:  # no thinking at all: the reasoning the engine streamed goes
            d.pop(f, None)
        if isinstance(d.get("content"), str) and d["content"]:
            d[field] = d.pop("content")
    return events


fault("bare_request_not_thinking", "a chat request without chat_template_kwargs does not think: the answer "
      "lands in the reasoning field, content empty", "SGLang #26036",
      chat=_answer_in_reasoning_message, chat_stream=_answer_in_reasoning_stream, when=_bare)


# -- SGLang #24293: text_delta on the still-open tool_use block
def _text_delta_on_tool_use(events: list[Event]) -> list[Event]:
    starts = [(i, _data(e).get("index")) for i, e in enumerate(events)
              if _data(e).get("type") == "content_block_start" and (_data(e).get("content_block") or {}).get("type") == "tool_use"]
    if len(starts) < 2:
        return events
    first = starts[0][1]
    stop = next((i for i, e in enumerate(events) if _data(e).get("type") == "content_block_stop" and _data(e).get("index") == first), None)
    if stop is None:
        return events
    bad = Event({"type": "content_block_delta", "index": first, "delta": {"type": "text_delta", "text": "\n"}},
                "content_block_delta")
    return events[:stop] + [bad] + events[stop:]


fault("anthropic_text_delta_on_tool_use", "/v1/messages stream with two tool calls: a text_delta sent on the "
      "still-open first tool_use block", "SGLang #24293", messages_stream=_text_delta_on_tool_use)


# -- SGLang #39826: reasoning tokens above completion tokens
def _inflate(usage: Any) -> None:
    if not isinstance(usage, dict) or not isinstance(usage.get("completion_tokens"), int):
        return
    c = usage["completion_tokens"]
    details = usage.get("completion_tokens_details")
    if not isinstance(details, dict):
        details = usage["completion_tokens_details"] = {}
    # as if every drafted token were counted as reasoning: above the tokens actually sent
    details["reasoning_tokens"] = (details.get("reasoning_tokens") or 0) + c + 1
    if "reasoning_tokens" in usage:
        usage["reasoning_tokens"] = details["reasoning_tokens"]


def _usage_body(body: dict) -> dict:
    _inflate(body.get("usage"))
    return body


def _usage_stream(events: list[Event]) -> list[Event]:
    for ev in events:
        if isinstance(ev.data, dict):
            _inflate(ev.data.get("usage"))
    return events


fault("usage_reasoning_over_completion", "usage reasoning_tokens larger than completion_tokens (body and the "
      "stream's usage chunk)", "SGLang #39826", chat=_usage_body, chat_stream=_usage_stream)
