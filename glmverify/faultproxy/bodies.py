"""Reading and rewriting OpenAI chat completion bodies and stream chunks, for the fault rewrites.

Helpers only, no fault: the choices of a body or chunk, the first message, the deltas of a
stream, a tool call's arguments (non-stream, and reassembled from a stream's fragments), finish
reasons, and a tool call in GLM-5.2's raw markup (what an engine without a working parser leaves
in content). Every helper tolerates malformed input (a fault may run on any answer).
"""
from __future__ import annotations

import copy
import json
from typing import Any, Callable

from .sse import Event

REASONING_FIELDS = ("reasoning", "reasoning_content")


def choices_of(obj: Any) -> list[dict]:
    ch = obj.get("choices") if isinstance(obj, dict) else None
    return [c for c in ch if isinstance(c, dict)] if isinstance(ch, list) else []


def message_of(body: Any) -> dict | None:
    ch = choices_of(body)
    msg = ch[0].get("message") if ch else None
    return msg if isinstance(msg, dict) else None


def chat_deltas(events: list[Event]):
    """(event index, choice, delta) for every chat chunk choice that has a delta."""
    for i, ev in enumerate(events):
        for ch in choices_of(ev.data):
            d = ch.get("delta")
            if isinstance(d, dict):
                yield i, ch, d


def is_reasoning_delta(d: dict) -> bool:
    return any(isinstance(d.get(f), str) and d.get(f) for f in REASONING_FIELDS)


def is_content_delta(d: dict) -> bool:
    return isinstance(d.get("content"), str) and bool(d.get("content"))


def map_args_json(fn: Callable[[Any], Any]) -> Callable[[str | None, str], str]:
    """Lift a function on parsed arguments to one on the JSON string (unparsable: unchanged)."""
    def on_string(name: str | None, args: str) -> str:
        try:
            value = json.loads(args) if args.strip() else {}
        except ValueError:
            return args
        return json.dumps(fn(value), ensure_ascii=False)
    return on_string


def rewrite_args(body: dict, fn: Callable[[str | None, str], str]) -> dict:
    """Non-stream: apply ``fn(name, arguments)`` to every tool call's argument string."""
    msg = message_of(body)
    for tc in (msg or {}).get("tool_calls") or []:
        f = tc.get("function") if isinstance(tc, dict) else None
        if isinstance(f, dict) and isinstance(f.get("arguments"), str):
            f["arguments"] = fn(f.get("name"), f["arguments"])
    return body


def stream_calls(events: list[Event]) -> dict[int, dict]:
    """Per tool-call index: name and the (event index, fragment dict) pairs carrying arguments."""
    calls: dict[int, dict] = {}
    for i, _, d in chat_deltas(events):
        for tc in d.get("tool_calls") or []:
            if not isinstance(tc, dict):
                continue
            slot = calls.setdefault(tc.get("index", 0), {"name": None, "frags": [], "first": (i, tc)})
            f = tc.get("function") or {}
            if f.get("name"):
                slot["name"] = f["name"]
            if isinstance(f.get("arguments"), str):
                slot["frags"].append((i, tc))
    return calls


def rewrite_stream_args(events: list[Event], fn: Callable[[str | None, str], str]) -> list[Event]:
    """Stream: reassemble each call's arguments, apply ``fn``, send the result as one fragment."""
    for slot in stream_calls(events).values():
        if not slot["frags"]:
            continue
        whole = "".join(tc["function"]["arguments"] for _, tc in slot["frags"])
        new = fn(slot["name"], whole)
        for n, (_, tc) in enumerate(slot["frags"]):
            tc["function"]["arguments"] = new if n == 0 else ""
    return events


def map_finish_reason(body_or_chunk: Any, mapping: dict[str, str]) -> None:
    for ch in choices_of(body_or_chunk):
        fr = ch.get("finish_reason")
        if fr in mapping:
            ch["finish_reason"] = mapping[fr]


def walk_scalars(value: Any, on_scalar: Callable[[Any], Any]) -> Any:
    if isinstance(value, dict):
        return {k: walk_scalars(v, on_scalar) for k, v in value.items()}
    if isinstance(value, list):
        return [walk_scalars(v, on_scalar) for v in value]
    return on_scalar(value)


def glm_markup(name: str | None, args: str) -> str:
    """A tool call in GLM-5.2's raw compact format (what an engine without a working parser leaves)."""
    try:
        parsed = json.loads(args) if args.strip() else {}
    except ValueError:
        parsed = {}
    inner = "".join(f"<arg_key>{k}</arg_key><arg_value>{v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}</arg_value>"
                    for k, v in (parsed.items() if isinstance(parsed, dict) else []))
    return f"<tool_call>{name}{inner}</tool_call>"


def content_chunk_like(template: Event, text: str) -> Event:
    data = copy.deepcopy(template.data)
    data["choices"] = [{"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}]
    data.pop("usage", None)
    return Event(data, template.event)
