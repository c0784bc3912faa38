"""Field bugs in tool calls (issue: bugs from the field), reproduced at the HTTP API.

One fault per reported symptom, each rewriting a conforming engine's answer into what the report
shows a client: the call in the reasoning field (vLLM #46040), a streamed name cut short (vLLM
#39757), streamed arguments that concatenate to invalid JSON (vLLM #34449), the call header
re-sent on the last chunk (vLLM #44098), a call cut by ``max_tokens`` that the stream labels
``tool_calls`` (vLLM #47903), ``tool_choice: required`` generating until ``max_tokens`` (vLLM
#49981, SGLang #13514) and, on one chat request with tools in three, an empty id, name or
arguments (vllm-ascend #8130, #11788). Stream faults rewrite the SSE events; the non-stream
answer stays correct where the report says it does.
"""
from __future__ import annotations

import copy
import itertools
import threading

from .bodies import (REASONING_FIELDS, chat_deltas, choices_of, glm_markup, is_content_delta, is_reasoning_delta,
                     map_finish_reason, message_of, stream_calls)
from .registry import fault
from .sse import Event


def _has_tools(body: dict) -> bool:
    """A chat completion request offering function tools (not an Anthropic one: no ``function``)."""
    tools = body.get("tools")
    return isinstance(tools, list) and any(isinstance(t, dict) and t.get("type") == "function" for t in tools)


# -- vLLM #46040: <tool_call> written before </think>; the call lands in reasoning, tool_calls empty
def _reasoning_field(obj: dict, default: str) -> str:
    return next((f for f in REASONING_FIELDS if obj.get(f)), default)


def _call_in_reasoning_message(body: dict) -> dict:
    msg = message_of(body)
    if not msg or not msg.get("tool_calls"):
        return body
    calls = msg.pop("tool_calls")
    raw = "".join(glm_markup((tc.get("function") or {}).get("name"), (tc.get("function") or {}).get("arguments") or "")
                  for tc in calls if isinstance(tc, dict))
    field = _reasoning_field(msg, "reasoning" if "reasoning" in msg else "reasoning_content")
    msg[field] = (msg.get(field) or "") + raw
    map_finish_reason(body, {"tool_calls": "stop"})
    return body


def _call_in_reasoning_stream(events: list[Event]) -> list[Event]:
    calls = stream_calls(events)
    if not calls:
        return events
    raw = "".join(glm_markup(s["name"], "".join(tc["function"]["arguments"] for _, tc in s["frags"]))
                  for _, s in sorted(calls.items()))
    deltas = list(chat_deltas(events))
    reasoning = [i for i, _, d in deltas if is_reasoning_delta(d)]
    content = [i for i, _, d in deltas if is_content_delta(d)]
    first_call = min(i for i, _, d in deltas if d.get("tool_calls"))
    # the markup joins the reasoning where the model wrote it: after the last reasoning delta,
    # before any content (so the stream stays well ordered: only the call is misplaced)
    at = reasoning[-1] + 1 if reasoning else min(content + [first_call])
    field = _reasoning_field(next((d for i, _, d in deltas if i in reasoning), {}), "reasoning")
    template = events[at if at < len(events) else first_call]
    data = copy.deepcopy(template.data)
    data["choices"] = [{"index": 0, "delta": {field: raw}, "logprobs": None, "finish_reason": None}]
    data.pop("usage", None)
    out: list[Event] = []
    for n, ev in enumerate(events):
        if n == at:
            out.append(Event(data, template.event))
        chs = choices_of(ev.data)
        d = chs[0].get("delta") if len(chs) == 1 else None
        if isinstance(d, dict) and d.get("tool_calls"):
            d.pop("tool_calls")
            if not chs[0].get("finish_reason") and not any(v not in (None, "") for v in d.values()):
                continue  # a chunk that carried only the call
        map_finish_reason(ev.data, {"tool_calls": "stop"})
        out.append(ev)
    return out


fault("tool_call_in_reasoning", "the tool call left as raw <tool_call> markup at the end of the reasoning field, "
      "tool_calls empty, finish_reason stop",
      "vLLM #46040 (glm45/glm47 parsers before vLLM PR #45915)",
      chat=_call_in_reasoning_message, chat_stream=_call_in_reasoning_stream)


# -- vLLM #39757 / vllm-ascend #8154: streamed tool name truncated (get_weather -> get)
def _truncate_name(name: str) -> str:
    head = name.split("_", 1)[0]
    return head if head != name else name[: max(1, len(name) // 2)]


def _name_truncated_stream(events: list[Event]) -> list[Event]:
    for _, _, d in chat_deltas(events):
        for tc in d.get("tool_calls") or []:
            f = tc.get("function") if isinstance(tc, dict) else None
            if isinstance(f, dict) and f.get("name"):
                f["name"] = _truncate_name(f["name"])
    return events


fault("stream_tool_name_truncated", "streamed tool names cut short ('get_weather' -> 'get'); non-stream correct",
      "vLLM #39757, vllm-ascend #8154 (worse with MTP)", chat_stream=_name_truncated_stream)


# -- vLLM #34449: with MTP or --stream-interval > 1, streamed arguments concatenate to invalid JSON
def _stray_flush_stream(events: list[Event]) -> list[Event]:
    """After each call's last argument fragment, a stray '{}' fragment (the empty-arguments flush
    of a chunk that ended inside the call): '{"city": "Paris", "days": 3}{}' does not parse."""
    for slot in stream_calls(events).values():
        if slot["frags"]:
            _, tc = slot["frags"][-1]
            tc["function"]["arguments"] += "{}"
    return events


fault("stream_args_stray_flush", "streamed arguments followed by a stray '{}' flush: the concatenation is not JSON; "
      "non-stream correct", "vLLM #34449 (MTP or --stream-interval > 1)", chat_stream=_stray_flush_stream)


# -- vLLM #44098 / vllm-ascend #8327: the last chunk re-sends id/type/name and carries the last
#    argument fragment together with finish_reason tool_calls
def _header_on_last_chunk(events: list[Event]) -> list[Event]:
    calls = stream_calls(events)
    finish = next((n for n in range(len(events) - 1, -1, -1)
                   if any(ch.get("finish_reason") for ch in choices_of(events[n].data))), None)
    if not calls or finish is None:
        return events
    idx, slot = max(calls.items())
    first = slot["first"][1]
    frag_event, frag = slot["frags"][-1] if slot["frags"] else (None, {"index": idx, "function": {"arguments": ""}})
    resent = {"id": first.get("id"), "type": "function", "index": idx,
              "function": {"name": slot["name"], "arguments": frag["function"]["arguments"]}}
    if frag_event is not None and frag_event != finish and frag is not first:
        ch = choices_of(events[frag_event].data)[0]
        ch["delta"]["tool_calls"] = [t for t in ch["delta"]["tool_calls"] if t is not frag]
        if not ch["delta"]["tool_calls"]:
            events = [e for n, e in enumerate(events) if n != frag_event]
            finish -= 1 if frag_event < finish else 0
    elif frag is first:  # the only fragment rode on the header: the last chunk repeats both
        resent["function"]["arguments"] = ""
    ch = choices_of(events[finish].data)[0]
    delta = ch.setdefault("delta", {})
    delta["tool_calls"] = [t for t in delta.get("tool_calls") or [] if t.get("index") != idx] + [resent]
    return events


fault("stream_header_on_last_chunk", "the last stream chunk re-sends the call's id, type and name, with the last "
      "argument fragment and finish_reason tool_calls", "vLLM #44098, vllm-ascend #8327",
      chat_stream=_header_on_last_chunk)


# -- vLLM #47903: a call cut by max_tokens: raw <tool_call> left in non-stream content; the stream
#    says finish_reason tool_calls instead of length
def _cut_markup_message(body: dict) -> dict:
    msg = message_of(body)
    ch = choices_of(body)
    if msg and msg.get("tool_calls") and ch and ch[0].get("finish_reason") == "length":
        calls = msg.pop("tool_calls")
        raw = "".join(glm_markup((tc.get("function") or {}).get("name"), (tc.get("function") or {}).get("arguments") or "")
                      for tc in calls if isinstance(tc, dict))
        # cut: the closing tag was never generated
        msg["content"] = (msg.get("content") or "") + raw.removesuffix("</tool_call>")
    return body


def _cut_finish_stream(events: list[Event]) -> list[Event]:
    if stream_calls(events):
        for ev in events:
            map_finish_reason(ev.data, {"length": "tool_calls"})
    return events


fault("cut_call_finish_tool_calls", "a tool call cut by max_tokens: non-stream leaves the raw markup in content; "
      "the stream ends finish_reason tool_calls instead of length", "vLLM #47903",
      chat=_cut_markup_message, chat_stream=_cut_finish_stream)


# -- vLLM #49981, SGLang #13514: tool_choice required (with reasoning and MTP) generates until
#    max_tokens: a JSON-array grammar forced on GLM's XML call format; accept length 1.0
FILLER = "[" + "\n" * 64


def _required_runaway_message(body: dict) -> dict:
    msg = message_of(body)
    if msg is not None:
        msg.pop("tool_calls", None)
        msg["content"] = FILLER
        map_finish_reason(body, {"tool_calls": "length", "stop": "length"})
    return body


def _required_runaway_stream(events: list[Event]) -> list[Event]:
    out: list[Event] = []
    filled = False
    for ev in events:
        chs = choices_of(ev.data)
        d = chs[0].get("delta") if len(chs) == 1 else None
        if isinstance(d, dict) and (d.get("tool_calls") or is_content_delta(d)):
            d.pop("tool_calls", None)
            d.pop("content", None)
            if not filled:
                d["content"] = FILLER
                filled = True
            elif not chs[0].get("finish_reason") and not any(v not in (None, "") for v in d.values()):
                continue
        for ch in chs:
            if ch.get("finish_reason"):
                ch["finish_reason"] = "length"
        out.append(ev)
    return out


fault("required_runaway", "tool_choice required: no tool call, the answer runs to max_tokens (finish_reason length, "
      "content a JSON-array opening and whitespace)", "vLLM #49981, SGLang #13514 (with reasoning and MTP)",
      chat=_required_runaway_message, chat_stream=_required_runaway_stream,
      when=lambda b: b.get("tool_choice") == "required")


# -- vllm-ascend #8130, #11788: intermittently (MTP), a call with an empty id, name or arguments
#    while finish_reason is tool_calls. Deterministic intermittence: every third chat request
#    with tools in this process is hit, the field emptied taking turns (id, name, arguments). With
#    requests in flight together, the turn an answer reads may be a neighbour's: still one of the
#    three fields, which is all the defect promises.
FIELDS = ("id", "name", "arguments")
_hits = itertools.count(1)
_lock = threading.Lock()
_turn: dict = {"field": None}


def _every_third_with_tools(body: dict) -> bool:
    if not _has_tools(body):
        return False
    with _lock:
        n = next(_hits)
    if n % 3:
        return False
    _turn["field"] = FIELDS[(n // 3 - 1) % len(FIELDS)]
    return True


def empty_field(which: str):
    """The rewrites emptying ``which`` (id, name or arguments) of the first call, body and stream."""
    def on_body(body: dict) -> dict:
        for tc in ((message_of(body) or {}).get("tool_calls") or [])[:1]:
            if which == "id":
                tc["id"] = ""
            else:
                tc.setdefault("function", {})[which] = ""
        return body

    def on_stream(events: list[Event]) -> list[Event]:
        calls = stream_calls(events)
        if not calls:
            return events
        slot = calls[min(calls)]
        if which == "id":
            slot["first"][1]["id"] = ""
        elif which == "name":
            slot["first"][1].setdefault("function", {})["name"] = ""
        else:
            for _, tc in slot["frags"]:
                tc["function"]["arguments"] = ""
        return events
    return on_body, on_stream


_EMPTY = {f: empty_field(f) for f in FIELDS}

fault("tool_call_field_empty_sometimes", "one chat request with tools in three: the first call's id, name or "
      "arguments empty (taking turns) while finish_reason stays tool_calls",
      "vllm-ascend #8130, #11788 (intermittent, with MTP)",
      chat=lambda b: _EMPTY[_turn["field"] or "id"][0](b), chat_stream=lambda e: _EMPTY[_turn["field"] or "id"][1](e),
      when=_every_third_with_tools)
