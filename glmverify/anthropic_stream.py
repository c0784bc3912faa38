"""Anthropic ``/v1/messages`` streams: read strictly and held to the event grammar.

The SDK's stream iterator parses each event into a model and leaves the grammar to the caller (its
accumulating helper then fails on a delta of the wrong type, SGLang #24293), so the suites read the
raw server-sent events and feed them here, as ``chat`` does for chat completions. The grammar a
conforming stream follows (Anthropic's streaming documentation):

* ``message_start`` first, once;
* per content block, in index order 0, 1, 2, ...: ``content_block_start``, its deltas,
  ``content_block_stop``; one block open at a time; every opened block stopped;
* a delta's type matches its block: ``thinking_delta`` / ``signature_delta`` in thinking,
  ``text_delta`` in text, ``input_json_delta`` in tool_use;
* ``message_delta`` carrying ``stop_reason`` after the last block, then ``message_stop``, last;
* ``ping`` anywhere; an ``error`` event is a defect; the SSE ``event:`` name equals the data's ``type``.

``MessagesStreamReader`` feeds lines (``feed_line``) or parsed events (``feed_event``), checks the
grammar as it goes and rebuilds the blocks; ``grammar_problems`` checks a list of events with no
reader state kept by the caller (the unit tests' hand-written good and bad streams). Each problem
names the event and the block, so a failing check's message says what broke, and carries a
stable ``messages.*`` code (``invariants.Violation``). ``result`` records the stream in the running
check's ledger, which holds it to the grammar and the other engine invariants when the check ends;
``read_body`` does the same for a non-stream body.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from .invariants import Violation
from .ledger import record_messages

#: the delta types each block type takes
BLOCK_DELTAS = {"thinking": ("thinking_delta", "signature_delta"), "redacted_thinking": (),
                "text": ("text_delta",), "tool_use": ("input_json_delta",)}
EVENT_TYPES = ("message_start", "content_block_start", "content_block_delta", "content_block_stop",
               "message_delta", "message_stop", "ping", "error")
MAX_PROBLEMS = 50  # a stream broken throughout reports its first defects, not thousands


@dataclass
class MessagesStream:
    """A stream rebuilt: blocks in index order, the stop reason, usage and every grammar defect."""

    blocks: list[dict] = field(default_factory=list)
    stop_reason: str | None = None
    usage: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # event types in arrival order

    def summary(self, head: int = 12, tail: int = 3) -> list[str]:
        """The event sequence, bounded, for the evidence."""
        ev = self.events
        return ev if len(ev) <= head + tail else ev[:head] + ["…"] + ev[-tail:]


class MessagesStreamReader:
    """Checks one stream's events against the grammar as they arrive and rebuilds its blocks."""

    def __init__(self, request: dict | None = None) -> None:
        self.out = MessagesStream()
        self.request = request
        self._recorded = False
        self._blocks: dict[int, dict] = {}
        self._open: int | None = None
        self._started = False
        self._delta_seen = False
        self._stopped = False
        self._sse_event: str | None = None  # the ``event:`` line of the event being read

    def _problem(self, code: str, text: str) -> None:
        if len(self.out.problems) < MAX_PROBLEMS:
            self.out.problems.append(Violation(code, text))

    # ---- SSE framing
    def feed_line(self, line: str) -> None:
        line = line.rstrip("\r")
        if not line:
            self._sse_event = None  # an event ends at a blank line
            return
        if line.startswith(":"):
            return
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key == "event":
            self._sse_event = value.strip()
        elif key == "data":
            try:
                data = json.loads(value)
            except ValueError:
                self._problem("messages.malformed_json", f"event {len(self.out.events) + 1} is not JSON: {value[:120]!r}")
                return
            self.feed_event(self._sse_event, data)
        elif key not in ("id", "retry"):
            self._problem("messages.not_sse", f"not an SSE line: {line[:120]!r}")

    # ---- the grammar
    def feed_event(self, name: str | None, data: Any) -> None:
        n = len(self.out.events) + 1
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            self._problem("messages.event_shape", f"event {n} has no type: {str(data)[:120]}")
            return
        kind = data["type"]
        self.out.events.append(kind)
        if name is not None and name != kind:
            self._problem("messages.event_name", f"event {n}: SSE event name {name!r} but data type {kind!r}")
        if kind == "ping":
            return
        if self._stopped:
            self._problem("messages.after_stop", f"{kind} after message_stop")
            return
        if not self._started and kind not in ("message_start", "error"):
            self._problem("messages.start_not_first", f"first event is {kind}, not message_start")
            self._started = True  # report once; keep checking the rest
        if kind not in EVENT_TYPES:
            self._problem("messages.unknown_event", f"unknown event type {kind!r}")
        elif kind == "message_start":
            if self._started:
                self._problem("messages.start_twice", "message_start sent twice")
            self._started = True
            usage = (data.get("message") or {}).get("usage") if isinstance(data.get("message"), dict) else None
            if isinstance(usage, dict):
                self.out.usage.update(usage)
        elif kind == "content_block_start":
            self._block_start(data)
        elif kind == "content_block_delta":
            self._block_delta(data)
        elif kind == "content_block_stop":
            idx = data.get("index")
            if idx != self._open:
                self._problem("messages.block_order", f"content_block_stop for block {idx} while {self._describe_open()}")
            else:
                self._open = None
        elif kind == "message_delta":
            if self._open is not None:
                self._problem("messages.block_order",
                              f"message_delta while block {self._open} ({self._blocks[self._open]['type']}) is still open")
            if self._delta_seen:
                self._problem("messages.delta_twice", "message_delta sent twice")
            self._delta_seen = True
            delta = data.get("delta") if isinstance(data.get("delta"), dict) else {}
            self.out.stop_reason = delta.get("stop_reason")
            if not self.out.stop_reason:
                self._problem("messages.no_stop_reason", "message_delta without a stop_reason")
            if isinstance(data.get("usage"), dict):
                self.out.usage.update(data["usage"])
        elif kind == "message_stop":
            if not self._delta_seen:
                self._problem("messages.no_stop_reason", "message_stop before any message_delta (no stop_reason sent)")
            self._stopped = True
        elif kind == "error":
            self._problem("messages.error_event", f"error event in stream: {str(data.get('error'))[:200]}")

    def _describe_open(self) -> str:
        return "no block is open" if self._open is None else f"block {self._open} is open"

    def _block_start(self, data: dict) -> None:
        idx, block = data.get("index"), data.get("content_block")
        if self._delta_seen:
            self._problem("messages.block_order", f"content_block_start for block {idx} after message_delta")
        if self._open is not None:
            self._problem("messages.block_order", f"block {idx} started while block {self._open} is open")
        if not isinstance(idx, int) or idx != len(self._blocks):
            self._problem("messages.block_index", f"block index {idx}, expected {len(self._blocks)} (misnumbered blocks)")
            if not isinstance(idx, int) or idx in self._blocks:
                return
        if not isinstance(block, dict) or block.get("type") not in BLOCK_DELTAS:
            self._problem("messages.block_type", f"block {idx} has an unknown type: {str(block)[:120]}")
            block = {"type": str((block or {}).get("type") if isinstance(block, dict) else block)}
        self._blocks[idx] = {"type": block["type"], "text": block.get("text") or "",
                             "thinking": block.get("thinking") or "", "json": "", "signature": "",
                             "name": block.get("name"), "id": block.get("id"), "deltas": set()}
        self._open = idx

    def _block_delta(self, data: dict) -> None:
        idx, d = data.get("index"), data.get("delta")
        b = self._blocks.get(idx) if isinstance(idx, int) else None
        if b is None or idx != self._open:
            self._problem("messages.block_order", f"delta for block {idx} which is not open ({self._describe_open()})")
            return
        if not isinstance(d, dict):
            self._problem("messages.event_shape", f"block {idx}: delta is not an object")
            return
        dtype = d.get("type")
        b["deltas"].add(str(dtype))
        allowed = BLOCK_DELTAS.get(b["type"], ())
        if dtype not in allowed:
            self._problem("messages.delta_type", f"{dtype} on the open {b['type']} block {idx} (a {b['type']} block takes "
                          f"{' or '.join(allowed) or 'no deltas'})")
            return
        key = {"text_delta": ("text", "text"), "thinking_delta": ("thinking", "thinking"),
               "signature_delta": ("signature", "signature"), "input_json_delta": ("json", "partial_json")}[dtype]
        value = d.get(key[1])
        if not isinstance(value, str):
            self._problem("messages.event_shape", f"block {idx}: {dtype} without a string {key[1]}")
            return
        b[key[0]] += value

    def result(self) -> MessagesStream:
        out = self.out
        if not out.events:
            self._problem("messages.empty", "empty stream: no events")
        if self._open is not None:
            self._problem("messages.block_order", f"block {self._open} ({self._blocks[self._open]['type']}) never stopped")
        if not self._delta_seen:
            self._problem("messages.no_stop_reason", "no message_delta event (no stop_reason)")
        last = next((e for e in reversed(out.events) if e != "ping"), None)
        if last != "message_stop":
            self._problem("messages.no_stop", f"stream did not end with message_stop (last: {last})")
        out.blocks = []
        for i in sorted(self._blocks):
            b = dict(self._blocks[i])
            if b["type"] == "tool_use":
                try:
                    b["input"] = json.loads(b["json"]) if b["json"].strip() else {}
                except ValueError:
                    self._problem("messages.input_not_json",
                                  f"tool_use block {i}: input_json_delta fragments are not JSON: {b['json'][:200]!r}")
                    b["input"] = None
            b["deltas"] = sorted(b["deltas"])
            out.blocks.append(b)
        if not self._recorded:  # the running check's ledger judges every stream (glmverify.ledger)
            self._recorded = True
            record_messages(out, self.request)
        return out


def read_events(events: Iterable[tuple[str | None, Any]]) -> MessagesStream:
    """A whole stream given as (SSE event name or None, data) pairs."""
    r = MessagesStreamReader()
    for name, data in events:
        r.feed_event(name, data)
    return r.result()


def read_lines(lines: Iterable[str]) -> MessagesStream:
    """A whole stream given as its SSE lines."""
    r = MessagesStreamReader()
    for line in lines:
        r.feed_line(line)
    return r.result()


def grammar_problems(events: Iterable[Any]) -> list[str]:
    """The grammar defects of a stream given as data dicts (or (name, data) pairs)."""
    return read_events((e if isinstance(e, tuple) else (None, e)) for e in events).problems


def read_body(body: Any, request: dict | None = None) -> MessagesStream:
    """A non-stream ``/v1/messages`` body (JSON-decoded) as a ``MessagesStream`` (no events), its
    shape checked, recorded in the running check's ledger like a stream."""
    out = MessagesStream()
    content = body.get("content") if isinstance(body, dict) else None
    if not isinstance(content, list):
        out.problems.append(Violation("body.no_content",
                                      f"content is {type(content).__name__}, not a list of blocks: {str(body)[:200]}"))
        content = []
    for i, b in enumerate(content):
        if not isinstance(b, dict) or not isinstance(b.get("type"), str):
            out.problems.append(Violation("body.block_shape", f"content[{i}] is not a typed block: {str(b)[:200]}"))
            continue
        out.blocks.append({"type": b["type"], "text": b.get("text") or "", "thinking": b.get("thinking") or "",
                           "name": b.get("name"), "id": b.get("id"), "input": b.get("input"),
                           "json": json.dumps(b["input"]) if b["type"] == "tool_use" else ""})
    out.stop_reason = body.get("stop_reason") if isinstance(body, dict) else None
    if not out.stop_reason:
        out.problems.append(Violation("body.no_stop_reason", "no stop_reason"))
    if isinstance(body, dict) and isinstance(body.get("usage"), dict):
        out.usage = dict(body["usage"])
    record_messages(out, request)
    return out
