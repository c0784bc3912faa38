"""Defects in ``/v1/chat/completions`` answers, body and stream, each taken from a bug report.

In catalogue order: the controls (the proxy itself must make nothing fail), the reasoning field,
markup left in content, defects that show only on some requests (``when``), an over-limit prompt
answered 500, tool-call arguments and names, finish reasons, and stream framing (chunks dropped,
reordered, re-split, truncated, malformed, reasoning after content). Every fault is registered
in ``registry.FAULTS`` at import.
"""
from __future__ import annotations

import json
from typing import Any, Callable

from .bodies import (REASONING_FIELDS, chat_deltas, choices_of, content_chunk_like, glm_markup, is_content_delta,
                     is_reasoning_delta, map_args_json, map_finish_reason, message_of, rewrite_args,
                     rewrite_stream_args, stream_calls, walk_scalars)
from .registry import Chat, Stream, fault
from .sse import DONE, Event


# -- controls: the proxy itself must not make anything fail
def _rechunk(events: list[Event], size: int = 16) -> list[Event]:
    """Merge runs of same-kind text deltas (reasoning, content, one call's arguments) into chunks of
    up to ``size`` characters: a legitimate chunking a conforming client must accept."""
    out: list[Event] = []
    run: dict | None = None  # {"key": (kind, index), "event": Event, "target": dict, "field": str}

    def flush():
        nonlocal run
        run = None

    for ev in events:
        chs = choices_of(ev.data)
        if len(chs) != 1 or chs[0].get("finish_reason") or ev.data.get("usage"):
            flush()
            out.append(ev)
            continue
        d = chs[0].get("delta") or {}
        keys = [k for k in d if d[k] not in (None, "")]
        key = None
        if keys == ["reasoning"] or keys == ["reasoning_content"]:
            key, target, fld = ("r", keys[0]), d, keys[0]
        elif keys == ["content"]:
            key, target, fld = ("c",), d, "content"
        elif keys == ["tool_calls"] and len(d["tool_calls"]) == 1:
            tc = d["tool_calls"][0]
            fn = tc.get("function") or {}
            if set(tc) <= {"index", "function"} and set(fn) == {"arguments"}:
                key, target, fld = ("a", tc.get("index")), fn, "arguments"
        if key is None:
            flush()
            out.append(ev)
            continue
        if run and run["key"] == key and len(run["target"][run["field"]]) + len(target[fld]) <= size:
            run["target"][run["field"]] += target[fld]
            continue
        out.append(ev)
        run = {"key": key, "target": target, "field": fld}
    return out


fault("control_passthrough", "control: every answer forwarded unchanged (expected: nothing fails)",
      chat=lambda b: b, chat_stream=lambda e: e, messages=lambda b: b, messages_stream=lambda e: e)
fault("control_rechunk", "control: stream deltas merged into chunks of up to 16 characters, a legal "
      "chunking (expected: nothing fails)", chat_stream=_rechunk)


# -- reasoning field
def _rename_reasoning(obj: dict, new: str | None) -> None:
    for f in REASONING_FIELDS:
        if f in obj:
            v = obj.pop(f)
            if new and v:
                obj[new] = v


def _on_message(fn: Callable[[dict], None]) -> Chat:
    def hook(body: dict) -> dict:
        msg = message_of(body)
        if msg is not None:
            fn(msg)
        return body
    return hook


def _on_deltas(fn: Callable[[dict], None]) -> Stream:
    def hook(events: list[Event]) -> list[Event]:
        for _, _, d in chat_deltas(events):
            fn(d)
        return events
    return hook


fault("reasoning_renamed", "reasoning returned under an unknown field name ('reasoning_text')",
      "field renames across vLLM versions (reasoning_content → reasoning, vLLM 0.13-0.16)",
      chat=_on_message(lambda m: _rename_reasoning(m, "reasoning_text")),
      chat_stream=_on_deltas(lambda d: _rename_reasoning(d, "reasoning_text")))
fault("reasoning_dropped", "reasoning field dropped from messages and deltas",
      "reasoning lost by a parser/serving mismatch",
      chat=_on_message(lambda m: _rename_reasoning(m, None)),
      chat_stream=_on_deltas(lambda d: _rename_reasoning(d, None)))


# -- markup left in content
def _think_tag_message(m: dict) -> None:
    if isinstance(m.get("content"), str) and m["content"]:
        m["content"] = "</think>\n\n" + m["content"]


def _think_tag_stream(events: list[Event]) -> list[Event]:
    for _, _, d in chat_deltas(events):
        if is_content_delta(d):
            d["content"] = "</think>\n\n" + d["content"]
            break
    return events


fault("think_tag_in_content", "the closing </think> tag left at the start of content",
      "vllm-ascend #12398 (<think> tags in streamed output)",
      chat=_on_message(_think_tag_message), chat_stream=_think_tag_stream)


def _markup_message(body: dict) -> dict:
    msg = message_of(body)
    if msg and msg.get("tool_calls"):
        calls = msg.pop("tool_calls")
        raw = "".join(glm_markup((tc.get("function") or {}).get("name"), (tc.get("function") or {}).get("arguments") or "")
                      for tc in calls if isinstance(tc, dict))
        msg["content"] = (msg.get("content") or "") + raw
        map_finish_reason(body, {"tool_calls": "stop"})
    return body


def _markup_stream(events: list[Event]) -> list[Event]:
    calls = stream_calls(events)
    if not calls:
        return events
    raw = "".join(glm_markup(s["name"], "".join(tc["function"]["arguments"] for _, tc in s["frags"]))
                  for _, s in sorted(calls.items()))
    out: list[Event] = []
    inserted = False
    for ev in events:
        chs = choices_of(ev.data)
        d = chs[0].get("delta") if len(chs) == 1 else None
        if isinstance(d, dict) and d.get("tool_calls"):
            if not inserted:
                out.append(content_chunk_like(ev, raw))
                inserted = True
            continue
        map_finish_reason(ev.data, {"tool_calls": "stop"})
        out.append(ev)
    return out


fault("tool_markup_in_content", "tool calls left as raw GLM <tool_call> markup in content, no tool_calls",
      "SGLang #19910 (wrong parser), #30925; vLLM #48095",
      chat=_markup_message, chat_stream=_markup_stream)


# -- defects that show only on some requests (``when``)
def _thinking_off(body: dict) -> bool:
    kwargs = body.get("chat_template_kwargs") or {}
    return isinstance(kwargs, dict) and kwargs.get("enable_thinking") is False


def _tool_choice_none(body: dict) -> bool:
    return body.get("tool_choice") == "none"


def _has_role(role: str) -> Callable[[dict], bool]:
    """A request predicate: some message of ``role`` (an earlier assistant turn, a tool result)."""
    return lambda body: any(isinstance(m, dict) and m.get("role") == role for m in body.get("messages") or [])


fault("tools_markup_thinking_off", "with enable_thinking false, tool calls left as raw markup in content",
      "vLLM #54744, vllm-ascend #12398 (parsing lost with thinking off)",
      chat=_markup_message, chat_stream=_markup_stream, when=lambda b: _thinking_off(b) and bool(b.get("tools")))
fault("tool_choice_none_ignored", "tool_choice none: the model still calls, the call left as raw markup in content",
      "SGLang #30925", request=lambda path, b: {**b, "tool_choice": "auto"},
      chat=_markup_message, chat_stream=_markup_stream, when=_tool_choice_none)
fault("tool_results_emptied", "tool results sent back (role tool) reach the model as empty blocks",
      "vLLM #39614 (tool results replaced by an empty block)",
      request=lambda path, b: {**b, "messages": [{**m, "content": ""} if isinstance(m, dict) and m.get("role") == "tool"
                                                 else m for m in b.get("messages") or []]},
      when=_has_role("tool"))


def _merge_reasoning_message(m: dict) -> None:
    reasoning = next((m.pop(f) for f in REASONING_FIELDS if f in m), None)
    if reasoning:
        m["content"] = reasoning + "</think>" + (m.get("content") or "")


def _merge_reasoning_stream(events: list[Event]) -> list[Event]:
    closed = False
    for _, _, d in chat_deltas(events):
        field = next((f for f in REASONING_FIELDS if d.get(f)), None)
        if field:
            d["content"] = d.pop(field)
        elif is_content_delta(d) and not closed:
            d["content"] = "</think>" + d["content"]
            closed = True
        for f in REASONING_FIELDS:
            d.pop(f, None)
    return events


fault("multi_turn_unsplit", "after an assistant turn, reasoning no longer split: it lands in content with </think>",
      "vLLM #27703, SGLang #9489 (multi-turn breaking after turn 2)",
      chat=_on_message(_merge_reasoning_message), chat_stream=_merge_reasoning_stream, when=_has_role("assistant"))


def _overlong_500(status: int, text: str) -> tuple[int, str]:
    # vLLM: "maximum context length ..."; SGLang: "... is longer than the model's context length"
    if status == 400 and any(k in text.lower() for k in ("context length", "max_model_len",
                                                         "maximum model length", "too long")):
        return 500, json.dumps({"error": {"message": "Internal Server Error", "type": "InternalServerError",
                                          "code": 500}})
    return status, text


fault("over_limit_500", "a prompt over the context limit answered with HTTP 500 instead of a 4xx",
      "prompt length checked inside the engine core instead of at the API server", error=_overlong_500)


# -- tool-call arguments and names
def _untyped(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, (int, float, bool)) else v


def _drop_first_key(v: Any) -> Any:
    if isinstance(v, dict) and v:
        v = dict(v)
        v.pop(next(iter(v)))
    return v


def _strip(v: Any) -> Any:
    return v.strip() if isinstance(v, str) else v


def _args_fault(name: str, description: str, source: str, fn: Callable[[str | None, str], str]) -> None:
    fault(name, description, source, chat=lambda b: rewrite_args(b, fn), chat_stream=lambda e: rewrite_stream_args(e, fn))


_args_fault("args_untyped", "numbers and booleans in arguments sent as strings (3 → \"3\")",
            "SGLang PR #15753 (values parsed as strings)", map_args_json(lambda v: walk_scalars(v, _untyped)))
_args_fault("args_invalid_json", "arguments cut before the closing brace: not JSON",
            "SGLang #11888 (arguments depend on chunk boundaries)", lambda n, a: a[:-1] if a.rstrip().endswith("}") else a + "{")
_args_fault("args_schema_invalid", "a required argument missing (valid JSON, invalid against the tool's schema)",
            "vLLM #42400 (tool calls failing to parse near max context)", map_args_json(_drop_first_key))
_args_fault("args_whitespace_stripped", "string argument values stripped of leading/trailing whitespace",
            "SGLang PR #20543", map_args_json(lambda v: walk_scalars(v, _strip)))


def _rename_tool(name: str) -> str:
    return f"functions.{name}"


def _unknown_name_message(body: dict) -> dict:
    for tc in (message_of(body) or {}).get("tool_calls") or []:
        f = tc.get("function") if isinstance(tc, dict) else None
        if isinstance(f, dict) and f.get("name"):
            f["name"] = _rename_tool(f["name"])
    return body


def _unknown_name_stream(events: list[Event]) -> list[Event]:
    for _, _, d in chat_deltas(events):
        for tc in d.get("tool_calls") or []:
            f = tc.get("function") if isinstance(tc, dict) else None
            if isinstance(f, dict) and f.get("name"):
                f["name"] = _rename_tool(f["name"])
    return events


fault("unknown_tool_name", "tool names that were not offered ('functions.get_weather')",
      "namespaced names from a mismatched parser", chat=_unknown_name_message, chat_stream=_unknown_name_stream)

def _finish_fault(name: str, description: str, source: str, mapping: dict[str, str]) -> None:
    def on_body(body: dict) -> dict:
        map_finish_reason(body, mapping)
        return body

    def on_stream(events: list[Event]) -> list[Event]:
        for ev in events:
            map_finish_reason(ev.data, mapping)
        return events
    fault(name, description, source, chat=on_body, chat_stream=on_stream)


_finish_fault("finish_stop_after_tool_calls", "finish_reason 'stop' after tool calls (not 'tool_calls')",
              "parsers that emit calls but leave finish_reason alone", {"tool_calls": "stop"})
_finish_fault("finish_length_after_answer", "finish_reason 'length' after a complete answer (not 'stop')",
              "stop-token handling lost (EOS ids not in the generation config)", {"stop": "length"})


# -- stream framing
def _drop_args_chunk(events: list[Event]) -> list[Event]:
    calls = [s for s in stream_calls(events).values() if s["frags"]]
    if not calls:
        return events
    slot = max(calls, key=lambda s: len(s["frags"]))
    i, tc = slot["frags"][len(slot["frags"]) // 2]
    if tc is slot["first"][1]:  # the only fragment rides on the chunk with id and name: drop its text
        tc["function"]["arguments"] = ""
        return events
    return [e for n, e in enumerate(events) if n != i]


def _reorder_args_chunks(events: list[Event]) -> list[Event]:
    for slot in stream_calls(events).values():
        frags = slot["frags"]
        if len(frags) >= 2:
            (_, a), (_, b) = frags[0], frags[1]
            a["function"]["arguments"], b["function"]["arguments"] = b["function"]["arguments"], a["function"]["arguments"]
        elif len(frags) == 1 and len(frags[0][1]["function"]["arguments"]) >= 2:
            s = frags[0][1]["function"]["arguments"]
            frags[0][1]["function"]["arguments"] = s[len(s) // 2:] + s[: len(s) // 2]
    return events


def _resplit_repeating_header(events: list[Event]) -> list[Event]:
    """Every argument fragment re-sent with the call's id, type and name (as if each were a new call
    header): clients that accumulate names get 'get_weatherget_weather', strict ones see a repeat."""
    calls = stream_calls(events)
    for slot in calls.values():
        first = slot["first"][1]
        for _, tc in slot["frags"]:
            if tc is first:
                continue
            tc["id"] = first.get("id")
            tc["type"] = "function"
            tc["function"]["name"] = slot["name"]
    return events


fault("stream_chunk_dropped", "one tool-call argument chunk dropped from the stream",
      "SGLang #11888, PR #39493 (streamed arguments lose text at chunk boundaries)", chat_stream=_drop_args_chunk)
fault("stream_chunk_reordered", "two tool-call argument chunks sent in the wrong order",
      "vLLM PR #39253 (argument chunks out of order under MTP)", chat_stream=_reorder_args_chunks)
fault("stream_chunk_resplit", "argument chunks re-split so each repeats the call's id and name",
      "SGLang PR #39493 (tool-call deltas re-sent with headers)", chat_stream=_resplit_repeating_header)


def _content_chunk_drop(events: list[Event]) -> list[Event]:
    idx = [i for i, _, d in chat_deltas(events) if is_content_delta(d)]
    if len(idx) < 2:
        return events
    drop = idx[len(idx) // 2]
    return [e for n, e in enumerate(events) if n != drop]


fault("stream_content_chunk_dropped", "one content chunk dropped from the middle of the answer",
      "lost deltas under load (SGLang #11888-style chunk loss, in text)", chat_stream=_content_chunk_drop)


def _truncate(events: list[Event]) -> list[Event]:
    body = [e for e in events if e.data != DONE]
    return body[: max(1, len(body) // 2)]


def _malformed(events: list[Event]) -> list[Event]:
    i = len(events) // 2
    if 0 < i < len(events) and isinstance(events[i].data, dict):
        text = json.dumps(events[i].data, ensure_ascii=False)
        events[i] = Event(raw=f"data: {text[: len(text) // 2]}")
    return events


def _reasoning_after_content(events: list[Event]) -> list[Event]:
    reasoning = [i for i, _, d in chat_deltas(events) if is_reasoning_delta(d)]
    content = [i for i, _, d in chat_deltas(events) if is_content_delta(d)]
    if not reasoning or not content or reasoning[-1] > content[0]:
        return events
    moved = events[reasoning[-1]]
    rest = [e for n, e in enumerate(events) if n != reasoning[-1]]
    at = content[0]  # just after the first content chunk, which moved up by one
    return rest[:at] + [moved] + rest[at:]


fault("stream_truncated", "stream cut in the middle: no finish_reason, no data: [DONE]",
      "engine restarts and proxies closing long streams", chat_stream=_truncate)
fault("stream_malformed_json", "one stream event carries half a JSON object",
      "a proxy splitting SSE events", chat_stream=_malformed)
fault("reasoning_after_content", "a reasoning delta arrives after the first content delta",
      "vllm-ascend #12398 (reasoning/content interleaved in streams)", chat_stream=_reasoning_after_content)
