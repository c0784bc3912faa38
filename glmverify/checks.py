"""Small assertion helpers shared by the suites: every failure says what was expected and what came back.

``conclude`` turns a statistical ``verdicts.Decision`` into the check's outcome: verified passes,
failed raises AssertionError, inconclusive raises ``Inconclusive`` (a pytest skip, so the run is
not red for lack of evidence; the plugin records the outcome ``inconclusive`` and the cell shows
it as its own status).
"""
from __future__ import annotations

import re

import pytest

from .chat import ChatResult
from .invariants import THINK_TAGS, TOOL_MARKUP
from .verdicts import FAILED, INCONCLUSIVE, Decision


def expect(cond: bool, msg: str) -> None:
    if not cond:
        raise AssertionError(msg)


def no_problems(res: ChatResult, what: str = "response") -> None:
    expect(res.error is None, f"{what}: request failed: {res.error}")
    expect(not res.problems, f"{what}: protocol defects: {res.problems[:5]}")


def no_markup(res: ChatResult, tags=THINK_TAGS + TOOL_MARKUP) -> None:
    for field in ("content", "reasoning"):
        text = getattr(res, field) or ""
        for tag in tags:
            expect(tag not in text, f"raw {tag!r} left in {field}: {text[:200]!r}")


def split_ok(res: ChatResult) -> None:
    """Thinking on: reasoning non-empty in its own field, content non-empty, no tags in either."""
    no_problems(res)
    expect(bool(res.reasoning and res.reasoning.strip()),
           f"expected reasoning in 'reasoning' or 'reasoning_content', got none (content={res.content!r:.200})")
    expect(bool(res.content and res.content.strip()),
           f"expected non-empty content; got {res.content!r} with reasoning {res.reasoning!r:.200} "
           "(the whole answer landed in reasoning)")
    no_markup(res, THINK_TAGS)


def structure_differences(a: ChatResult, b: ChatResult) -> list[str]:
    """How two answers to the same request differ in structure (not text): tool names in order,
    arguments equal as JSON, reasoning present in both or neither, content present in both or
    neither, same finish reason. Sampled answers differ in wording; a conforming engine's stream
    and non-stream answers never differ in these."""
    import json

    out = []
    if [t.name for t in a.tool_calls] != [t.name for t in b.tool_calls]:
        out.append(f"tool names {[t.name for t in a.tool_calls]} vs {[t.name for t in b.tool_calls]}")
    else:
        for i, (x, y) in enumerate(zip(a.tool_calls, b.tool_calls)):
            try:
                same = json.loads(x.arguments or "{}") == json.loads(y.arguments or "{}")
            except ValueError:
                same = x.arguments == y.arguments
            if not same:
                out.append(f"call {i} ({x.name}) arguments {x.arguments[:120]!r} vs {y.arguments[:120]!r}")
    for name in ("reasoning", "content"):
        pa, pb = bool((getattr(a, name) or "").strip()), bool((getattr(b, name) or "").strip())
        if pa != pb:
            out.append(f"{name} {'present' if pa else 'absent'} vs {'present' if pb else 'absent'}")
    if a.finish_reason != b.finish_reason:
        out.append(f"finish_reason {a.finish_reason!r} vs {b.finish_reason!r}")
    return out


def words(text: str | None) -> int:
    return len(re.findall(r"\S+", text or ""))


class Inconclusive(pytest.skip.Exception):
    """The sample budget ran out before the check could decide (never verified, never failed)."""


def conclude(*decisions: Decision, evidence=None, context: str = "") -> None:
    """Record every decision in the evidence (under ``decisions``), then end the check by the
    worst of them: any failed fails it, else any inconclusive makes it inconclusive."""
    if evidence is not None:
        evidence.setdefault("decisions", []).extend(d.evidence() for d in decisions)
    prefix = context + ": " if context else ""
    failed = [d for d in decisions if d.status == FAILED]
    if failed:
        raise AssertionError(prefix + "; ".join(d.summary() for d in failed))
    open_ = [d for d in decisions if d.status == INCONCLUSIVE]
    if open_:
        raise Inconclusive("INCONCLUSIVE: " + prefix + "; ".join(d.summary() for d in open_))
