"""Server-sent events as the proxy sees them: a stream's text parsed into events and rendered back.

A stream-rewriting fault works on the list of events (``parse_sse``), never on bytes, so a
rewrite cannot split an event by accident; an event whose data is not JSON is kept verbatim
(``Event.raw``) and rendered unchanged. ``render_sse(parse_sse(text))`` equals ``text`` up to
the spacing of the JSON (tests/unit/test_faultproxy.py checks it on recorded streams).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

DONE = "[DONE]"


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
