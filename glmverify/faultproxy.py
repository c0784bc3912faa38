"""A response-mutating reverse proxy: one conforming engine behind it, a known defect in front.

Every check of the suites must be able to fail. ``FaultProxy(upstream, "args_untyped")`` listens on
127.0.0.1, forwards each request to a conforming engine and rewrites what comes back the way a
real engine bug would (the faults are taken from bug reports: see ``FAULTS``). The suites then run
against the proxy with ``--endpoint`` and must report the feature ``failed``; ``glmverify.faults``
does that for the whole catalogue (``fixtures/faults.yaml``).

Kinds of fault (hooks of ``Fault``):

* ``chat`` / ``chat_stream``: rewrite a ``/v1/chat/completions`` answer (the JSON body, or the list
  of SSE events of a stream, which the proxy buffers, rewrites and replays);
* ``messages`` / ``messages_stream``: the same for Anthropic ``/v1/messages``;
* ``metrics``: rewrite ``/metrics`` (Prometheus text);
* ``request``: rewrite the request before it is forwarded (e.g. ask the GLM-5.2 stand-in for one
  of its scripted faults through ``vllm_xargs``, so no relaunch is needed);
* ``respond``: replace the engine entirely (garbage bodies, never-ending streams, a hang), for
  the harness's own reliability tests;
* ``error``: rewrite a non-200 answer (status and body);
* ``when``: a predicate on the request body; the fault's request and answer rewrites apply only to
  requests it accepts (a defect that shows only on multi-turn, thinking-off or ``tool_choice:
  none`` requests).

Several proxies can front the same engine; each runs its own event loop in a daemon thread.
``python -m glmverify.faultproxy serve --upstream URL --fault NAME`` runs one in the foreground,
``python -m glmverify.faultproxy list`` lists the faults.
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import dataclasses
import json
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

DONE = "[DONE]"
REASONING_FIELDS = ("reasoning", "reasoning_content")
HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive",
               "content-encoding", "accept-encoding", "upgrade", "proxy-connection", "te", "trailer"}


# ---- SSE ---------------------------------------------------------------------------------------------
@dataclass
class Event:
    """One server-sent event: ``data`` parsed (a dict, or ``DONE``), or ``raw`` text kept verbatim."""

    data: Any = None
    event: str | None = None
    raw: str | None = None

    def render(self) -> str:
        if self.raw is not None:
            return self.raw if self.raw.endswith("\n\n") else self.raw + "\n\n"
        head = f"event: {self.event}\n" if self.event else ""
        body = DONE if self.data == DONE else json.dumps(self.data, ensure_ascii=False)
        return f"{head}data: {body}\n\n"


def parse_sse(text: str) -> list[Event]:
    """SSE text → events (comments dropped; a data line that is not JSON is kept raw)."""
    events: list[Event] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        if not data:
            continue
        payload = "\n".join(data)
        if payload.strip() == DONE:
            events.append(Event(DONE, name))
            continue
        try:
            events.append(Event(json.loads(payload), name))
        except ValueError:
            events.append(Event(raw=block, event=name))
    return events


def render_sse(events: list[Event]) -> str:
    return "".join(e.render() for e in events)


# ---- helpers over chat completion bodies and chunks ---------------------------------------------------
def _choices(obj: Any) -> list[dict]:
    ch = obj.get("choices") if isinstance(obj, dict) else None
    return [c for c in ch if isinstance(c, dict)] if isinstance(ch, list) else []


def _message(body: Any) -> dict | None:
    ch = _choices(body)
    msg = ch[0].get("message") if ch else None
    return msg if isinstance(msg, dict) else None


def _deltas(events: list[Event]):
    """(event index, choice, delta) for every chat chunk choice that has a delta."""
    for i, ev in enumerate(events):
        for ch in _choices(ev.data):
            d = ch.get("delta")
            if isinstance(d, dict):
                yield i, ch, d


def _is_reasoning_delta(d: dict) -> bool:
    return any(isinstance(d.get(f), str) and d.get(f) for f in REASONING_FIELDS)


def _is_content_delta(d: dict) -> bool:
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
    msg = _message(body)
    for tc in (msg or {}).get("tool_calls") or []:
        f = tc.get("function") if isinstance(tc, dict) else None
        if isinstance(f, dict) and isinstance(f.get("arguments"), str):
            f["arguments"] = fn(f.get("name"), f["arguments"])
    return body


def _stream_calls(events: list[Event]) -> dict[int, dict]:
    """Per tool-call index: name and the (event index, fragment dict) pairs carrying arguments."""
    calls: dict[int, dict] = {}
    for i, _, d in _deltas(events):
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
    for slot in _stream_calls(events).values():
        if not slot["frags"]:
            continue
        whole = "".join(tc["function"]["arguments"] for _, tc in slot["frags"])
        new = fn(slot["name"], whole)
        for n, (_, tc) in enumerate(slot["frags"]):
            tc["function"]["arguments"] = new if n == 0 else ""
    return events


def _finish(body_or_chunk: Any, mapping: dict[str, str]) -> None:
    for ch in _choices(body_or_chunk):
        fr = ch.get("finish_reason")
        if fr in mapping:
            ch["finish_reason"] = mapping[fr]


def _walk(value: Any, on_scalar: Callable[[Any], Any]) -> Any:
    if isinstance(value, dict):
        return {k: _walk(v, on_scalar) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, on_scalar) for v in value]
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


def _content_chunk_like(template: Event, text: str) -> Event:
    data = copy.deepcopy(template.data)
    data["choices"] = [{"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}]
    data.pop("usage", None)
    return Event(data, template.event)


# ---- faults ----------------------------------------------------------------------------------------------
Chat = Callable[[dict], dict]
Stream = Callable[[list[Event]], list[Event]]


@dataclass
class Fault:
    """A named defect. Every hook is optional; a hook returns the rewritten value."""

    name: str
    description: str
    source: str = ""  # the bug report it imitates
    chat: Chat | None = None
    chat_stream: Stream | None = None
    messages: Chat | None = None
    messages_stream: Stream | None = None
    metrics: Callable[[str, dict], str] | None = None
    request: Callable[[str, dict], dict] | None = None
    respond: Callable[["_Ctx"], Awaitable[Any]] | None = None
    error: Callable[[int, str], tuple[int, str]] | None = None
    when: Callable[[dict], bool] | None = None

    def applies(self, body: Any) -> bool:
        """Whether this fault's rewrites apply to a request with ``body`` (parsed JSON or None)."""
        return self.when is None or (isinstance(body, dict) and bool(self.when(body)))

    def touches(self, kind: str, stream: bool) -> bool:
        hook = {("chat", False): self.chat, ("chat", True): self.chat_stream,
                ("messages", False): self.messages, ("messages", True): self.messages_stream,
                ("metrics", False): self.metrics}.get((kind, stream))
        return hook is not None


FAULTS: dict[str, Fault] = {}


def fault(name: str, description: str, source: str = "", **hooks) -> Fault:
    f = Fault(name, description, source, **hooks)
    if name in FAULTS:
        raise ValueError(f"fault {name!r} defined twice")
    FAULTS[name] = f
    return f


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
        chs = _choices(ev.data)
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
        msg = _message(body)
        if msg is not None:
            fn(msg)
        return body
    return hook


def _on_deltas(fn: Callable[[dict], None]) -> Stream:
    def hook(events: list[Event]) -> list[Event]:
        for _, _, d in _deltas(events):
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
    for _, _, d in _deltas(events):
        if _is_content_delta(d):
            d["content"] = "</think>\n\n" + d["content"]
            break
    return events


fault("think_tag_in_content", "the closing </think> tag left at the start of content",
      "vllm-ascend #12398 (<think> tags in streamed output)",
      chat=_on_message(_think_tag_message), chat_stream=_think_tag_stream)


def _markup_message(body: dict) -> dict:
    msg = _message(body)
    if msg and msg.get("tool_calls"):
        calls = msg.pop("tool_calls")
        raw = "".join(glm_markup((tc.get("function") or {}).get("name"), (tc.get("function") or {}).get("arguments") or "")
                      for tc in calls if isinstance(tc, dict))
        msg["content"] = (msg.get("content") or "") + raw
        _finish(body, {"tool_calls": "stop"})
    return body


def _markup_stream(events: list[Event]) -> list[Event]:
    calls = _stream_calls(events)
    if not calls:
        return events
    raw = "".join(glm_markup(s["name"], "".join(tc["function"]["arguments"] for _, tc in s["frags"]))
                  for _, s in sorted(calls.items()))
    out: list[Event] = []
    inserted = False
    for ev in events:
        chs = _choices(ev.data)
        d = chs[0].get("delta") if len(chs) == 1 else None
        if isinstance(d, dict) and d.get("tool_calls"):
            if not inserted:
                out.append(_content_chunk_like(ev, raw))
                inserted = True
            continue
        _finish(ev.data, {"tool_calls": "stop"})
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
    for _, _, d in _deltas(events):
        field = next((f for f in REASONING_FIELDS if d.get(f)), None)
        if field:
            d["content"] = d.pop(field)
        elif _is_content_delta(d) and not closed:
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
            "SGLang PR #15753 (values parsed as strings)", map_args_json(lambda v: _walk(v, _untyped)))
_args_fault("args_invalid_json", "arguments cut before the closing brace: not JSON",
            "SGLang #11888 (arguments depend on chunk boundaries)", lambda n, a: a[:-1] if a.rstrip().endswith("}") else a + "{")
_args_fault("args_schema_invalid", "a required argument missing (valid JSON, invalid against the tool's schema)",
            "vLLM #42400 (tool calls failing to parse near max context)", map_args_json(_drop_first_key))
_args_fault("args_whitespace_stripped", "string argument values stripped of leading/trailing whitespace",
            "SGLang PR #20543", map_args_json(lambda v: _walk(v, _strip)))


def _rename_tool(name: str) -> str:
    return f"functions.{name}"


def _unknown_name_message(body: dict) -> dict:
    for tc in (_message(body) or {}).get("tool_calls") or []:
        f = tc.get("function") if isinstance(tc, dict) else None
        if isinstance(f, dict) and f.get("name"):
            f["name"] = _rename_tool(f["name"])
    return body


def _unknown_name_stream(events: list[Event]) -> list[Event]:
    for _, _, d in _deltas(events):
        for tc in d.get("tool_calls") or []:
            f = tc.get("function") if isinstance(tc, dict) else None
            if isinstance(f, dict) and f.get("name"):
                f["name"] = _rename_tool(f["name"])
    return events


fault("unknown_tool_name", "tool names that were not offered ('functions.get_weather')",
      "namespaced names from a mismatched parser", chat=_unknown_name_message, chat_stream=_unknown_name_stream)

def _finish_fault(name: str, description: str, source: str, mapping: dict[str, str]) -> None:
    def on_body(body: dict) -> dict:
        _finish(body, mapping)
        return body

    def on_stream(events: list[Event]) -> list[Event]:
        for ev in events:
            _finish(ev.data, mapping)
        return events
    fault(name, description, source, chat=on_body, chat_stream=on_stream)


_finish_fault("finish_stop_after_tool_calls", "finish_reason 'stop' after tool calls (not 'tool_calls')",
              "parsers that emit calls but leave finish_reason alone", {"tool_calls": "stop"})
_finish_fault("finish_length_after_answer", "finish_reason 'length' after a complete answer (not 'stop')",
              "stop-token handling lost (EOS ids not in the generation config)", {"stop": "length"})


# -- stream framing
def _drop_args_chunk(events: list[Event]) -> list[Event]:
    calls = [s for s in _stream_calls(events).values() if s["frags"]]
    if not calls:
        return events
    slot = max(calls, key=lambda s: len(s["frags"]))
    i, tc = slot["frags"][len(slot["frags"]) // 2]
    if tc is slot["first"][1]:  # the only fragment rides on the chunk with id and name: drop its text
        tc["function"]["arguments"] = ""
        return events
    return [e for n, e in enumerate(events) if n != i]


def _reorder_args_chunks(events: list[Event]) -> list[Event]:
    for slot in _stream_calls(events).values():
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
    calls = _stream_calls(events)
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
    idx = [i for i, _, d in _deltas(events) if _is_content_delta(d)]
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
    reasoning = [i for i, _, d in _deltas(events) if _is_reasoning_delta(d)]
    content = [i for i, _, d in _deltas(events) if _is_content_delta(d)]
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


# -- Anthropic /v1/messages
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


# -- /metrics (speculative decoding counters)
def _metrics_missing(text: str, state: dict) -> str:
    return "\n".join(ln for ln in text.splitlines() if "spec_decode" not in ln) + "\n"


def _metrics_frozen(text: str, state: dict) -> str:
    return state.setdefault("frozen_metrics", text)


def _metrics_accept_low(text: str, state: dict) -> str:
    """Accepted-token counters scaled to a tenth: the mean accept length drops toward 1 (a drafter
    that stopped matching after an upgrade, SGLang #24795 / #36829), drafts unchanged."""
    out = []
    for ln in text.splitlines():
        name = ln.split("{", 1)[0].split(" ", 1)[0]
        if not ln.startswith("#") and name.startswith("vllm:spec_decode_num_accepted_tokens"):
            head, _, value = ln.rpartition(" ")
            try:
                ln = f"{head} {float(value) / 10:.1f}"
            except ValueError:
                pass
        out.append(ln)
    return "\n".join(out) + "\n"


fault("spec_accept_low", "/metrics: accepted draft tokens a tenth of the engine's (accept length below the minimum)",
      "MTP acceptance collapse (SGLang #24795 / #36829)", metrics=_metrics_accept_low)
fault("spec_metrics_missing", "/metrics without any vllm:spec_decode_* counter",
      "SGLang #24795 / #36829 (MTP silently off after an upgrade)", metrics=_metrics_missing)
fault("spec_metrics_frozen", "/metrics frozen at its first answer: counters never move",
      "stale metrics behind a caching gateway", metrics=_metrics_frozen)


# -- scripted stand-in faults, requested per request (no relaunch)
STANDIN_XARGS_KEY = "glm_standin_faults"  # glmverify.standin.forcing.FAULTS_KEY
#: the engines' extra-arguments fields the stand-in reads per-request faults from: vLLM's
#: ``vllm_xargs`` (SGLang ignores it) and SGLang's ``custom_params`` (vLLM ignores it). SGLang's
#: /v1/messages has no such field: stand-in faults on SGLang's Anthropic endpoint need a launch.
STANDIN_FIELDS = ("vllm_xargs", "custom_params")


def standin_request(names: str) -> Callable[[str, dict], dict]:
    def hook(path: str, body: dict) -> dict:
        out = dict(body)
        for name in STANDIN_FIELDS:
            xargs = dict(body.get(name) or {})
            xargs[STANDIN_XARGS_KEY] = ",".join(filter(None, [xargs.get(STANDIN_XARGS_KEY), names]))
            out[name] = xargs
        return out
    return hook


for _name, _what in (("wrong_answers", "GSM8K answers off by one, needle passphrase altered"),
                     ("skip_think_end", "no </think>: the whole answer lands in reasoning (SGLang #37645)"),
                     ("ignore_effort", "Max-length reasoning at every effort level"),
                     ("empty_reasoning", "</think> straight away: no reasoning with thinking on"),
                     ("no_tool_call", "answers in text instead of calling a tool"),
                     ("script_canary", "the answer carries <script>window.__glm_canary=1</script>"),
                     ("low_accuracy", "GSM8K answers wrong one time in five (about 80% accuracy)"),
                     ("ignore_thinking_off", "enable_thinking false ignored: Max-length prose in content")):
    fault(f"standin_{_name}", f"stand-in scripted fault {_name!r} on every chat request: {_what}",
          "glmverify/standin/script.py FAULTS", request=standin_request(_name))


# -- garbage and hangs (reliability tests of the harness itself)
@dataclass
class _Ctx:
    request: Any  # aiohttp.web.Request
    kind: str
    stream: bool
    body: Any
    state: dict = field(default_factory=dict)


def _only(kinds: tuple[str, ...], make: Callable[[_Ctx], Awaitable[Any]]) -> Callable[[_Ctx], Awaitable[Any]]:
    async def respond(ctx: _Ctx):
        return await make(ctx) if ctx.kind in kinds else None
    return respond


async def _send_sse(ctx: _Ctx, lines) -> Any:
    from aiohttp import web

    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
    await resp.prepare(ctx.request)
    try:
        async for chunk in lines:
            await resp.write(chunk.encode())
        await resp.write_eof()
    except ConnectionResetError:  # the client gave up (as it should on a never-ending stream)
        pass
    return resp


async def _not_json(ctx: _Ctx):
    from aiohttp import web

    if ctx.stream:
        async def lines():
            for _ in range(3):
                yield "data: <html><body>502 Bad Gateway</body></html>\n\n"
            yield "data: [DONE]\n\n"
        return await _send_sse(ctx, lines())
    return web.Response(status=200, text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")


async def _wrong_types(ctx: _Ctx):
    from aiohttp import web

    if ctx.stream:
        async def lines():
            yield 'data: {"choices": "many"}\n\n'
            yield 'data: {"choices": [{"delta": ["content"], "finish_reason": null}]}\n\n'
            yield 'data: {"choices": [{"delta": {"content": 42, "reasoning": {"a": 1}, "tool_calls": "none"}}]}\n\n'
            yield 'data: [1, 2, 3]\n\n'
            yield 'data: {"choices": [{"delta": {"tool_calls": [7, {"index": "x", "function": "f"}]}, "finish_reason": 9}], "usage": "lots"}\n\n'
            yield "data: [DONE]\n\n"
        return await _send_sse(ctx, lines())
    if ctx.kind == "messages":
        return web.json_response({"type": "message", "content": "not a list", "stop_reason": 3, "usage": []})
    return web.json_response({"id": 1, "object": "chat.completion", "choices": [
        {"index": "0", "message": {"role": "assistant", "content": 42, "reasoning": ["a", "b"],
                                   "tool_calls": "none"}, "finish_reason": 7}], "usage": "lots"})


HUGE_BYTES = 48 * 1024 * 1024


async def _huge(ctx: _Ctx):
    from aiohttp import web

    blob = "A" * HUGE_BYTES
    if ctx.stream:
        async def lines():
            yield "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": blob}, "finish_reason": None}]}) + "\n\n"
            yield "data: " + json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}) + "\n\n"
            yield "data: [DONE]\n\n"
        return await _send_sse(ctx, lines())
    return web.Response(status=200, content_type="application/json", text=json.dumps(
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": blob}, "finish_reason": "stop"}],
         "usage": {"completion_tokens": 1}}))


async def _endless(ctx: _Ctx):
    if not ctx.stream:
        return None  # non-stream requests go to the engine (see garbage_drip_body)
    chunk = "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": "la "}, "finish_reason": None}]}) + "\n\n"

    async def lines():
        while True:
            yield chunk * 64
            await asyncio.sleep(0)
    return await _send_sse(ctx, lines())


async def _drip(ctx: _Ctx):
    """A non-stream answer whose body never ends: one byte of JSON whitespace every half second, so
    no read timeout ever fires."""
    from aiohttp import web

    if ctx.stream:
        return None
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await resp.prepare(ctx.request)
    try:
        await resp.write(b'{"choices": [')
        while True:
            await resp.write(b" ")
            await asyncio.sleep(0.5)
    except ConnectionResetError:
        return resp


async def _hang(ctx: _Ctx):
    await asyncio.Event().wait()  # accept, read the request, never answer


fault("garbage_not_json", "chat/messages answered with an HTML error page (200), streams with non-JSON events",
      respond=_only(("chat", "messages"), _not_json))
fault("garbage_wrong_types", "chat/messages answered with JSON of the wrong types everywhere",
      respond=_only(("chat", "messages"), _wrong_types))
fault("garbage_huge_body", f"chat answered with a {HUGE_BYTES >> 20} MiB content string",
      respond=_only(("chat",), _huge))
fault("garbage_endless_stream", "chat streams never end (content deltas as fast as they can be sent)",
      respond=_only(("chat",), _endless))
fault("garbage_drip_body", "non-stream chat answers whose body never ends (a byte every 0.5 s)",
      respond=_only(("chat",), _drip))
fault("hang", "chat and messages requests accepted and never answered", respond=_only(("chat", "messages"), _hang))
fault("hang_everything", "every request accepted and never answered (health and models too)",
      respond=_hang)


def leak_secret(names: list[str], base: Fault | None = None) -> Fault:
    """Test aid: ``base`` plus the values of environment variables ``names`` appended to every chat
    answer, as a model or engine echoing its environment would (the harness must redact them)."""
    values = " ".join(os.environ.get(n, "") for n in names)
    base = base or FAULTS["control_passthrough"]

    def add(body: dict) -> dict:
        body = base.chat(body) if base.chat else body
        m = _message(body)
        if m is not None and isinstance(m.get("content"), str):
            m["content"] += " " + values
        return body

    def add_stream(events: list[Event]) -> list[Event]:
        events = base.chat_stream(events) if base.chat_stream else events
        last = [d for _, _, d in _deltas(events) if _is_content_delta(d)][-1:]
        for d in last:  # at the end, as in the non-stream answer: stream and non-stream stay equal
            d["content"] += " " + values
        return events
    return dataclasses.replace(base, name=f"{base.name}+leak_secret",
                               description=f"{base.description}; environment values echoed in answers",
                               chat=add, chat_stream=add_stream)


def proxy_row(row: dict, row_id: str, upstream: str, fault: str = "control_passthrough",
              leak_env: list[str] = (), secret_env: list[str] = ()) -> dict:
    """A matrix row (matrix.yaml shape) whose "engine" is this proxy, launched as a process in front
    of ``upstream``: the harness launches, probes, stops and records it like any process engine, while
    the answers come from the real engine behind it (with ``fault`` applied)."""
    args = ["--upstream", upstream, "--fault", fault, "--host", "{host}", "--port", "{port}"]
    for name in leak_env:
        args += ["--leak-env", name]
    launch = {"launcher": "process", "command": ["{python}", "-m", "glmverify.faultproxy", "serve"], "args": args,
              "startup_timeout": 120}
    if secret_env:
        launch["secret_env"] = list(secret_env)
    return {**row, "id": row_id, "launch": launch,
            "description": f"fault proxy ({fault}) in front of a running engine, launched as a process"}


# ---- the proxy ---------------------------------------------------------------------------------------------
def route(method: str, path: str) -> str:
    if method == "POST" and path.rstrip("/").endswith("/chat/completions"):
        return "chat"
    if method == "POST" and path.rstrip("/").endswith("/v1/messages"):
        return "messages"
    if method == "GET" and path.rstrip("/") == "/metrics":
        return "metrics"
    return "other"


class FaultProxy:
    """Reverse proxy on ``host`` (127.0.0.1) in front of ``upstream``, applying ``fault``.

    ``stats`` counts requests per kind and how many answers the fault actually changed, so a run
    can tell a detected fault from one that never fired.
    """

    def __init__(self, upstream: str, fault: str | Fault | None = None, host: str = "127.0.0.1",
                 port: int = 0, read_timeout: float = 1800.0):
        self.upstream = upstream.rstrip("/")
        self.fault = FAULTS[fault] if isinstance(fault, str) else (fault or FAULTS["control_passthrough"])
        self.host = host
        self.port = port
        self.read_timeout = read_timeout
        self.state: dict = {}
        self.stats: dict[str, int] = {"requests": 0, "mutated": 0}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._runner = None
        self._session = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ---- life
    def start(self) -> "FaultProxy":
        self._thread = threading.Thread(target=self._run, name=f"faultproxy-{self.fault.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self._error:
            raise RuntimeError(f"fault proxy did not start: {self._error}")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None or not loop.is_running():
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            fut.result(timeout=15)
        except Exception:  # noqa: BLE001 - stopping must not raise
            pass
        loop.call_soon_threadsafe(loop.stop)
        if self._thread:
            self._thread.join(timeout=15)

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _serve(self) -> None:
        import aiohttp
        from aiohttp import web

        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=self.read_timeout),
            auto_decompress=False)
        app = web.Application(client_max_size=1 << 31)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                                      shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        if self._session:
            await self._session.close()

    # ---- requests
    async def _handle(self, request):
        import aiohttp
        from aiohttp import web

        raw = await request.read()
        kind = route(request.method, request.path)
        body: Any = None
        if raw and kind in ("chat", "messages"):
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        stream = isinstance(body, dict) and body.get("stream") is True
        self.stats["requests"] += 1
        self.stats[kind] = self.stats.get(kind, 0) + 1
        f = self.fault
        if f.respond is not None:
            ctx = _Ctx(request, kind, stream, body, self.state)
            resp = await f.respond(ctx)
            if resp is not None:
                self.stats["mutated"] += 1
                return resp
        applies = f.applies(body) if kind in ("chat", "messages") else f.when is None
        if f.request is not None and kind == "chat" and isinstance(body, dict) and applies:
            body = f.request(request.path, body)
            raw = json.dumps(body).encode()
            self.stats["mutated"] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        headers["Accept-Encoding"] = "identity"
        url = self.upstream + request.path_qs
        up = None
        for attempt in (1, 2):
            try:
                up = await self._session.request(request.method, url, data=raw or None, headers=headers)
                break
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                # a pooled keep-alive connection the upstream closed just before reuse (seen at 64
                # requests in flight): one fresh attempt, so the proxy adds no fault of its own
                if attempt == 2:
                    return web.Response(status=502, text=f"fault proxy: upstream unreachable: {exc}")
            except Exception as exc:  # noqa: BLE001 - an unreachable upstream is a 502, as in a real gateway
                return web.Response(status=502, text=f"fault proxy: upstream unreachable: {exc}")
        assert up is not None
        async with up:
            out_headers = {k: v for k, v in up.headers.items() if k.lower() not in HOP_HEADERS}
            if up.status != 200 and f.error is not None and applies:
                text = (await up.read()).decode("utf-8", errors="replace")
                status, new = f.error(up.status, text)
                if (status, new) != (up.status, text):
                    self.stats["mutated"] += 1
                return web.Response(status=status, body=new.encode(), headers=out_headers)
            if up.status != 200 or not applies or not f.touches(kind, stream):
                resp = web.StreamResponse(status=up.status, headers=out_headers)
                await resp.prepare(request)
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
            text = (await up.read()).decode("utf-8", errors="replace")
        new = self.mutate(kind, stream, text)
        if new != text:
            self.stats["mutated"] += 1
        return web.Response(status=200, body=new.encode(), headers=out_headers)

    def mutate(self, kind: str, stream: bool, text: str) -> str:
        """Apply the fault to one upstream answer (text in, text out); used by tests on recordings."""
        return apply(self.fault, kind, stream, text, self.state)


def apply(f: Fault, kind: str, stream: bool, text: str, state: dict | None = None) -> str:
    """The fault's rewrite of one answer of ``kind`` (chat, messages, metrics)."""
    state = {} if state is None else state
    if kind == "metrics":
        return f.metrics(text, state) if f.metrics else text
    hook = {("chat", False): f.chat, ("chat", True): f.chat_stream,
            ("messages", False): f.messages, ("messages", True): f.messages_stream}.get((kind, stream))
    if hook is None:
        return text
    if stream:
        return render_sse(hook(parse_sse(text)))
    try:
        body = json.loads(text)
    except ValueError:
        return text
    return json.dumps(hook(body), ensure_ascii=False)


# ---- command line ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m glmverify.faultproxy", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the faults")
    s = sub.add_parser("serve", help="run one proxy in the foreground")
    s.add_argument("--upstream", required=True, help="base URL of the conforming engine")
    s.add_argument("--fault", default="control_passthrough", choices=sorted(FAULTS))
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--leak-env", action="append", default=[], metavar="NAME",
                   help="test aid: print NAME=value at start and append the values to chat answers, as a "
                        "careless engine would (the harness must redact both)")
    args = ap.parse_args(argv)
    if args.cmd == "list":
        for name, f in FAULTS.items():
            print(f"{name:32s} {f.description}")
        return 0
    f = leak_secret(args.leak_env, FAULTS[args.fault]) if args.leak_env else FAULTS[args.fault]
    for name in args.leak_env:
        print(f"environment: {name}={os.environ.get(name, '')}", flush=True)
    proxy = FaultProxy(args.upstream, f, host=args.host, port=args.port).start()
    print(f"fault proxy {f.name} on {proxy.url} -> {args.upstream}", flush=True)
    print("Application startup complete.", flush=True)
    stop = threading.Event()
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *a: stop.set())
    stop.wait()
    proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
