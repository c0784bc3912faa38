"""Small assertion helpers shared by the suites: every failure says what was expected and what came back.

Helpers here are per answer (invariants: a conforming engine never breaks them); model behaviour
(which tools a sampled answer calls, whether it retrieves a needle) is a rate (``glmverify.behaviour``),
and two independent samples are never required to be equal.

``conclude`` turns a statistical ``verdicts.Decision`` into the check's outcome: verified passes,
failed raises AssertionError, inconclusive raises ``Inconclusive`` (a pytest skip, so the run is
not red for lack of evidence; the plugin records the outcome ``inconclusive`` and the cell shows
it as its own status).
"""
from __future__ import annotations

import re

import pytest

from .chat_answers import ChatResult
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
