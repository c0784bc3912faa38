"""Defects in Anthropic ``/v1/messages`` answers: thinking blocks dropped, tool_use blocks misnumbered.

Both imitate SGLang #26795. The stream rewrites keep the events well formed (every delta and stop
moves with its block), so only the defect named is visible to a client.
"""
from __future__ import annotations

from .registry import fault
from .sse import Event


def _drop_thinking_blocks(body: dict) -> dict:
    if isinstance(body.get("content"), list):
        body["content"] = [b for b in body["content"] if not (isinstance(b, dict) and b.get("type") in ("thinking", "redacted_thinking"))]
    return body


def _drop_thinking_events(events: list[Event]) -> list[Event]:
    dropped: set[int] = set()
    out = []
    for ev in events:
        d = ev.data if isinstance(ev.data, dict) else {}
        if d.get("type") == "content_block_start" and (d.get("content_block") or {}).get("type") in ("thinking", "redacted_thinking"):
            dropped.add(d.get("index"))
            continue
        if d.get("type") in ("content_block_delta", "content_block_stop") and d.get("index") in dropped:
            continue
        if isinstance(d.get("index"), int):
            d["index"] -= sum(1 for x in dropped if isinstance(x, int) and x < d["index"])
        out.append(ev)
    return out


def _misnumber_tool_use(events: list[Event]) -> list[Event]:
    tool_idx: set[int] = set()
    for ev in events:
        d = ev.data if isinstance(ev.data, dict) else {}
        if d.get("type") == "content_block_start" and (d.get("content_block") or {}).get("type") == "tool_use":
            tool_idx.add(d.get("index"))
    for ev in events:
        d = ev.data if isinstance(ev.data, dict) else {}
        if d.get("type", "").startswith("content_block_") and d.get("index") in tool_idx:
            d["index"] += 1
    return events


fault("anthropic_thinking_dropped", "/v1/messages: thinking blocks dropped (stream and not)",
      "SGLang #26795", messages=_drop_thinking_blocks, messages_stream=_drop_thinking_events)
fault("anthropic_tool_use_misnumbered", "/v1/messages stream: tool_use blocks numbered one too high",
      "SGLang #26795", messages_stream=_misnumber_tool_use)
