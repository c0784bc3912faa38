"""One chat completion answer, streamed or not, parsed strictly into a ``ChatResult``.

Streams are parsed here (SSE framing, JSON per event, a final ``[DONE]``), not by the ``openai``
SDK, because the SDK silently tolerates the defects a conformance check exists to catch: a
truncated stream, a reasoning delta after content, a tool-call id sent twice. Field names differ
across versions: reasoning is ``reasoning`` (vLLM >= 0.16), ``reasoning_content`` (SGLang, vLLM
<= 0.11) or both (vLLM 0.13-0.15); both are accepted and the one used is recorded.

Every problem found while parsing is a coded ``invariants.Violation`` (a ``str``). Every answer's
``usage`` is held to arithmetic no engine may get wrong (``usage_problems``): a prompt has tokens,
an answer with output has completion tokens, total = prompt + completion, reasoning tokens are
part of the completion (vLLM reports them under ``completion_tokens_details.reasoning_tokens``,
SGLang there and under ``reasoning_tokens``; both are checked) and the completion fits
``max_tokens``. Streams are checked on their usage chunk (``stream_options.include_usage``). A
broken count is a protocol defect like a malformed chunk: billing and context budgeting read it
(SGLang #39826: reasoning tokens above completion tokens under speculative decoding).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .invariants import Violation as V
from .invariants import usage_violations


REASONING_FIELDS = ("reasoning", "reasoning_content")
MAX_STREAM_EVENTS = 200_000  # a never-ending stream is a failed check, not a hung run
MAX_STREAM_SECONDS = 600.0


@dataclass
class ToolCall:
    id: str | None
    name: str | None
    arguments: str

    def parsed(self) -> Any:
        return json.loads(self.arguments) if self.arguments.strip() else {}


@dataclass
class ChatResult:
    stream: bool
    content: str | None = None
    reasoning: str | None = None
    reasoning_field: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # protocol defects seen while parsing
    events: int = 0
    request: dict[str, Any] = field(default_factory=dict)
    elapsed: float = 0.0
    status: int | None = None  # HTTP status when the engine refused the request
    error: str | None = None   # transport or HTTP error, instead of raising out of a batch
    # streams with tool calls: how the engine chunked them (engines differ: one delta per call or
    # argument fragments, several calls flushed in one delta), recorded, never judged
    stream_shape: dict[str, Any] = field(default_factory=dict)
    # the answer as it came over the wire: the parsed body, or a stream's chunks in order (what a
    # check needs beyond the normalised fields, e.g. each tool call's declared type and header;
    # glmverify.toolcalls); never in excerpts
    wire: Any = field(default=None, repr=False)

    @property
    def truncated(self) -> bool:
        """Cut by max_tokens (or the context): not an ordinary answer, never scored as one."""
        return self.finish_reason == "length"

    @property
    def completion_tokens(self) -> int | None:
        v = self.usage.get("completion_tokens")
        return int(v) if isinstance(v, (int, float)) else None

    @property
    def reasoning_tokens(self) -> int | None:
        details = self.usage.get("completion_tokens_details") or {}
        v = details.get("reasoning_tokens") if isinstance(details, dict) else None
        if isinstance(v, int) and v > 0:
            return v
        v = self.usage.get("reasoning_tokens")
        return v if isinstance(v, int) and v > 0 else None

    def excerpt(self, n: int = 600) -> dict[str, Any]:
        """The part of the response a reviewer needs, bounded."""
        def cut(s):
            return s if s is None or len(s) <= n else s[:n] + f"…(+{len(s) - n})"
        return {
            "stream": self.stream,
            "reasoning_field": self.reasoning_field,
            "reasoning": cut(self.reasoning),
            "content": cut(self.content),
            "tool_calls": [{"id": t.id, "name": t.name, "arguments": cut(t.arguments)} for t in self.tool_calls],
            "finish_reason": self.finish_reason,
            "truncated": self.truncated,
            "usage": self.usage,
            "problems": self.problems[:10],
            "events": self.events,
            "status": self.status,
            "error": self.error,
            **({"stream_shape": self.stream_shape} if self.stream_shape else {}),
        }


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _reasoning_of(msg: dict, result: ChatResult) -> str | None:
    found = None
    for name in REASONING_FIELDS:
        v = msg.get(name)
        if isinstance(v, str) and v:
            if found is None:
                found = v
                result.reasoning_field = result.reasoning_field or name
            elif result.reasoning_field != name and v != found:
                result.problems.append(V("body.reasoning_fields_disagree",
                                         f"'{result.reasoning_field}' and '{name}' disagree"))
        elif v is not None and not isinstance(v, str):
            result.problems.append(V("body.field_type", f"{name} is {type(v).__name__}, not a string"))
    return found


def usage_problems(usage: Any, request: dict | None = None, has_output: bool = True) -> list[str]:
    """What is wrong with one answer's ``usage`` (empty: nothing, or no usage to check); the
    checks are ``invariants.usage_violations``."""
    return usage_violations(usage, request, has_output)


def _has_output(res: "ChatResult") -> bool:
    return bool(res.content or res.reasoning or res.tool_calls)


def parse_completion(body: Any, request: dict | None = None) -> ChatResult:
    """A non-stream chat completion body (already JSON-decoded)."""
    res = ChatResult(stream=False, request=request or {}, wire=body)
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list) or not body["choices"]:
        res.problems.append(V("body.no_choices", f"no choices in response: {str(body)[:300]}"))
        return res
    choice = body["choices"][0]
    msg = _get(choice, "message")
    if not isinstance(msg, dict):
        res.problems.append(V("body.no_message", "choice has no message object"))
        return res
    content = msg.get("content")
    if content is not None and not isinstance(content, str):
        res.problems.append(V("body.field_type", f"content is {type(content).__name__}, not a string"))
        content = str(content)
    res.content = content
    res.reasoning = _reasoning_of(msg, res)
    calls = msg.get("tool_calls") or []
    if not isinstance(calls, list):
        res.problems.append(V("body.field_type", f"tool_calls is {type(calls).__name__}, not a list"))
        calls = []
    for i, tc in enumerate(calls):
        if not isinstance(tc, dict):
            res.problems.append(V("body.field_type", f"tool_calls[{i}] is {type(tc).__name__}, not an object"))
            continue
        fn = tc.get("function") or {}
        if not isinstance(fn, dict):
            res.problems.append(V("body.field_type", f"tool_calls[{i}].function is {type(fn).__name__}, not an object"))
            fn = {}
        args = fn.get("arguments")
        if not isinstance(args, str):
            res.problems.append(V("calls.arguments_not_string",
                                  f"tool_calls[{i}].function.arguments is {type(args).__name__}, not a JSON string"))
            args = json.dumps(args) if args is not None else ""
        if tc.get("type") not in (None, "function"):
            res.problems.append(V("calls.type", f"tool_calls[{i}].type is {tc.get('type')!r}"))
        res.tool_calls.append(ToolCall(tc.get("id"), fn.get("name"), args))
    res.finish_reason = choice.get("finish_reason")
    if res.finish_reason is not None and not isinstance(res.finish_reason, str):
        res.problems.append(V("body.field_type", f"finish_reason is {type(res.finish_reason).__name__}, not a string"))
        res.finish_reason = str(res.finish_reason)
    usage = body.get("usage") or {}
    if not isinstance(usage, dict):
        res.problems.append(V("body.field_type", f"usage is {type(usage).__name__}, not an object"))
        usage = {}
    res.usage = usage
    res.problems += usage_problems(usage, res.request, _has_output(res))
    res.events = 1
    return res


class StreamAssembler:
    """Reassembles chat-completion chunks and notes every ordering/framing defect."""

    def __init__(self, request: dict | None = None):
        self.res = ChatResult(stream=True, request=request or {}, wire=[])
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, dict] = {}
        self._max_calls_per_event = 0
        self._seen_content = False
        self._seen_tool = False
        self._done = False
        self._finished = False

    def feed_line(self, line: str) -> None:
        if self._done:
            if line.strip():
                self.res.problems.append(V("stream.data_after_done", "data after [DONE]"))
            return
        line = line.rstrip("\r")
        if not line or line.startswith(":"):
            return
        if not line.startswith("data:"):
            if line.split(":", 1)[0] in ("event", "id", "retry"):
                return
            self.res.problems.append(V("stream.not_sse", f"not an SSE line: {line[:120]!r}"))
            return
        data = line[5:].strip()
        if data == "[DONE]":
            self._done = True
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            self.res.problems.append(V("stream.malformed_json",
                                       f"malformed JSON in stream event {self.res.events + 1}: {data[:120]!r}"))
            return
        self.feed_chunk(chunk)

    def feed_chunk(self, chunk: Any) -> None:
        r = self.res
        r.events += 1
        r.wire.append(chunk)
        if not isinstance(chunk, dict):
            r.problems.append(V("stream.event_not_object", f"stream event {r.events} is not an object"))
            return
        if "error" in chunk:
            r.problems.append(V("stream.error_event", f"error event in stream: {str(chunk['error'])[:200]}"))
        if isinstance(chunk.get("usage"), dict) and chunk["usage"]:
            r.usage = chunk["usage"]
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            r.problems.append(V("stream.event_shape",
                                f"choices is {type(choices).__name__}, not a list in event {r.events}"))
            choices = []
        for choice in choices:
            if not isinstance(choice, dict):
                r.problems.append(V("stream.event_shape", "choice is not an object"))
                continue
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                r.problems.append(V("stream.event_shape",
                                    f"delta is {type(delta).__name__}, not an object in event {r.events}"))
                continue
            for name in ("content", *REASONING_FIELDS):
                if delta.get(name) is not None and not isinstance(delta.get(name), str):
                    r.problems.append(V("stream.event_shape",
                                        f"delta.{name} is {type(delta[name]).__name__}, not a string in event {r.events}"))
            if self._finished and (delta.get("content") or delta.get("tool_calls") or any(delta.get(f) for f in REASONING_FIELDS)):
                r.problems.append(V("stream.delta_after_finish", f"delta after finish_reason in event {r.events}"))
            for name in REASONING_FIELDS:
                v = delta.get(name)
                if isinstance(v, str) and v:
                    if r.reasoning_field is None:
                        r.reasoning_field = name
                    if name != r.reasoning_field:
                        continue  # the same text under the second name (vLLM 0.13-0.15)
                    if self._seen_content:
                        r.problems.append(V("stream.reasoning_after_content",
                                            f"reasoning delta after content in event {r.events}"))
                    if self._seen_tool:
                        r.problems.append(V("stream.reasoning_after_call",
                                            f"reasoning delta after a tool call in event {r.events}"))
                    self._reasoning.append(v)
            c = delta.get("content")
            if isinstance(c, str) and c:
                self._seen_content = True
                self._content.append(c)
            calls = delta.get("tool_calls") or []
            if not isinstance(calls, list):
                r.problems.append(V("stream.event_shape",
                                    f"delta.tool_calls is {type(calls).__name__}, not a list in event {r.events}"))
                calls = []
            if isinstance(calls, list) and calls:
                n = len({tc.get("index") for tc in calls if isinstance(tc, dict)})
                self._max_calls_per_event = max(self._max_calls_per_event, n)
            for tc in calls:
                self._seen_tool = True
                if not isinstance(tc, dict):
                    r.problems.append(V("stream.event_shape",
                                        f"tool call delta is {type(tc).__name__}, not an object in event {r.events}"))
                    continue
                idx = tc.get("index")
                if not isinstance(idx, int):
                    r.problems.append(V("stream.call_without_index",
                                        f"tool call delta without an integer index in event {r.events}"))
                    idx = len(self._calls)
                slot = self._calls.setdefault(idx, {"id": None, "name": None, "args": []})
                if tc.get("id"):
                    if slot["id"] is not None and slot["id"] != tc["id"]:
                        r.problems.append(V("stream.call_id_changed",
                                            f"tool call {idx}: id changed from {slot['id']!r} to {tc['id']!r}"))
                    elif slot["id"] is not None:
                        r.problems.append(V("stream.call_header_resent", f"tool call {idx}: id sent twice"))
                    slot["id"] = tc["id"]
                fn = tc.get("function") or {}
                if not isinstance(fn, dict):
                    r.problems.append(V("stream.event_shape",
                                        f"tool call {idx}: function is {type(fn).__name__}, not an object"))
                    fn = {}
                if fn.get("name"):
                    if slot["name"] is not None:
                        r.problems.append(V("stream.call_header_resent",
                                            f"tool call {idx}: name sent twice ({slot['name']!r}, {fn['name']!r})"))
                    slot["name"] = fn["name"]
                if fn.get("arguments") is not None:
                    if not isinstance(fn["arguments"], str):
                        r.problems.append(V("stream.event_shape", f"tool call {idx}: argument fragment is not a string"))
                    else:
                        slot["args"].append(fn["arguments"])
            if choice.get("finish_reason") is not None and not isinstance(choice["finish_reason"], str):
                r.problems.append(V("stream.event_shape",
                                    f"finish_reason is {type(choice['finish_reason']).__name__}, not a string"))
                choice = {**choice, "finish_reason": str(choice["finish_reason"])}
            if choice.get("finish_reason"):
                if self._finished and choice["finish_reason"] != r.finish_reason:
                    r.problems.append(V("stream.finish_reason_changed", "finish_reason sent twice with different values"))
                r.finish_reason = choice["finish_reason"]
                self._finished = True

    def result(self) -> ChatResult:
        r = self.res
        r.content = "".join(self._content) if self._content else None
        r.reasoning = "".join(self._reasoning) if self._reasoning else None
        r.tool_calls = [ToolCall(s["id"], s["name"], "".join(s["args"])) for _, s in sorted(self._calls.items())]
        if self._calls:
            r.stream_shape = {"calls": len(self._calls), "max_calls_in_one_event": self._max_calls_per_event,
                              "argument_fragments": [len(s["args"]) for _, s in sorted(self._calls.items())]}
        if not self._done:
            r.problems.append(V("stream.no_done", "stream ended without data: [DONE]"))
        if r.finish_reason is None:
            r.problems.append(V("stream.no_finish", "stream ended without a finish_reason"))
        r.problems += usage_problems(r.usage, r.request, _has_output(r))
        return r
