"""The catalogue of proxy faults: every definition module imported, in listing order, and test aids.

``FAULTS`` (name -> ``Fault``) holds, in this order: the chat completion defects and controls
(``chat_faults``), Anthropic ``/v1/messages`` (``anthropic_faults``), ``/metrics``
(``metrics_faults``), the stand-in's scripted faults asked per request (``standin_faults``) and
the garbage and hangs of the reliability tests (``reliability_faults``). A new fault goes in
the module of its endpoint; ``fixtures/faults.yaml`` then names it in an entry.
"""
from __future__ import annotations

import dataclasses
import os

# imported for their registrations in FAULTS; the order is the listing's order
from . import chat_faults, anthropic_faults, metrics_faults, standin_faults, reliability_faults  # noqa: F401
# the field bugs, one module per area: tool calls, reasoning/Anthropic/usage, long context and speculative decoding
from . import field_tool_faults, field_api_faults, field_spec_faults  # noqa: F401
# what a gateway in front of an attached deployment changes (the attach path's own tests)
from . import gateway_faults  # noqa: F401
# planted slowdowns (serving_performance): answers paced between the engine and the client
from . import perf_faults  # noqa: F401
# planted degenerate answers (a share of requests decoded greedily: loops to max_tokens)
from . import degeneration_faults  # noqa: F401
# planted accuracy faults the absolute gate cannot see (issue #25): subtle drop, decay, batch-dependent
from . import accuracy_faults  # noqa: F401
from .bodies import chat_deltas, is_content_delta, message_of
from .registry import FAULTS, Fault
from .sse import Event
from .standin_faults import STANDIN_FIELDS, STANDIN_XARGS_KEY, standin_request  # noqa: F401 - re-exported

__all__ = ["FAULTS", "Fault", "leak_secret", "standin_request", "STANDIN_FIELDS", "STANDIN_XARGS_KEY"]


def leak_secret(names: list[str], base: Fault | None = None) -> Fault:
    """Test aid: ``base`` plus the values of environment variables ``names`` appended to every chat
    answer, as a model or engine echoing its environment would (the harness must redact them)."""
    values = " ".join(os.environ.get(n, "") for n in names)
    base = base or FAULTS["control_passthrough"]
    # billed as generated, as a model writing them would be (the reference's stand-in tokenizer is
    # byte-level: a token a byte), so the echo is a secret to redact, not unbilled text
    extra = len((" " + values).encode("utf-8"))

    def bill(usage) -> None:
        if isinstance(usage, dict):
            for k in ("completion_tokens", "total_tokens"):
                if isinstance(usage.get(k), int):
                    usage[k] += extra

    def add(body: dict) -> dict:
        body = base.chat(body) if base.chat else body
        m = message_of(body)
        if m is not None and isinstance(m.get("content"), str):
            m["content"] += " " + values
            bill(body.get("usage"))
        return body

    def add_stream(events: list[Event]) -> list[Event]:
        events = base.chat_stream(events) if base.chat_stream else events
        last = [d for _, _, d in chat_deltas(events) if is_content_delta(d)][-1:]
        for d in last:  # at the end, as in the non-stream answer: stream and non-stream stay equal
            d["content"] += " " + values
        if last:
            for ev in events:
                if isinstance(ev.data, dict):
                    bill(ev.data.get("usage"))
        return events
    return dataclasses.replace(base, name=f"{base.name}+leak_secret",
                               description=f"{base.description}; environment values echoed in answers",
                               chat=add, chat_stream=add_stream)
