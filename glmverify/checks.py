"""Small assertion helpers shared by the suites: every failure says what was expected and what came
back, with a stable code and the decisive values.

A failure is a ``Failure`` (an ``AssertionError``): its message for the reader, its ``code`` (dotted,
``area.what``, e.g. ``tool_call.arguments_not_json``; every code a suite uses is listed with its
meaning in ``failure_codes``) and its ``fields`` (a small dict of the values that decided it, e.g.
``{"mode": "stream", "call": 0}``). The plugin records code and fields next to the detail of the
check (``coded``), and the diagnosis matches catalogue entries by them, not by the wording, so a
message may be reworded without breaking a diagnosis. ``expect(cond, message)`` without a code
still works (the failure then has none and the diagnosis falls back to the wording).

Helpers here are per answer (invariants: a conforming engine never breaks them); model behaviour
(which tools a sampled answer calls, whether it retrieves a needle) is a rate (``glmverify.behaviour``),
and two independent samples are never required to be equal.

``conclude`` turns a statistical ``verdicts.Decision`` into the check's outcome: verified passes,
failed raises a ``Failure`` (code: the check's, or ``serving.error_rate`` when only the
serving-error bar failed), inconclusive raises ``Inconclusive`` (a pytest skip, so the run is not
red for lack of evidence; the plugin records the outcome ``inconclusive`` and the cell shows it as
its own status; it carries the code too).
"""
from __future__ import annotations

import re
from typing import Any

import pytest

from .chat_answers import ChatResult
from .invariants import THINK_TAGS, TOOL_MARKUP, code_of
from .verdicts import FAILED, INCONCLUSIVE, Decision

#: the code of a failed serving-error bar (``policy.serving_decision``): timeouts, transport errors, 5xx
SERVING_CODE = "serving.error_rate"
MAX_FIELD_CHARS = 200


def _small(v: Any) -> Any:
    """A field value as evidence keeps it: scalars as they are, text clipped, lists short."""
    if isinstance(v, (bool, int, float)) or v is None:
        return v
    if isinstance(v, (list, tuple, set, frozenset)):
        items = sorted(v, key=str) if isinstance(v, (set, frozenset)) else list(v)
        return [_small(x) for x in items[:20]]
    return str(v)[:MAX_FIELD_CHARS]


class Failure(AssertionError):
    """A failed check: the message, its stable ``code`` (None: an uncoded failure) and ``fields``."""

    def __init__(self, message: str, code: str | None = None, **fields: Any):
        super().__init__(message)
        self.code = code
        self.fields = {k: _small(v) for k, v in fields.items()}


def expect(cond: bool, msg: str, code: str | None = None, **fields: Any) -> None:
    if not cond:
        raise Failure(msg, code, **fields)


#: the harness's own exceptions that end a check before it ran (by class name: no import of the layers
#: that raise them), as codes
RAISED_CODES = {"ObservedMismatch": "deployment.differs_from_row", "ServedModelError": "deployment.served_model_missing",
                "EngineStartupError": "engine.startup_failed"}


def coded(exc: BaseException | None) -> dict[str, Any]:
    """``{code, fields}`` of a raised failure (empty for an uncoded one): what the plugin records."""
    code = getattr(exc, "code", None)
    if not isinstance(code, str) or not code:
        code = next((RAISED_CODES[c.__name__] for c in type(exc).__mro__ if c.__name__ in RAISED_CODES), None)
        return {"code": code, "fields": {}} if code else {}
    fields = getattr(exc, "fields", None)
    return {"code": code, "fields": dict(fields) if isinstance(fields, dict) else {}}


def no_problems(res: ChatResult, what: str = "response") -> None:
    expect(res.error is None, f"{what}: request failed: {res.error}", "request.failed", error=str(res.error)[:120])
    codes = sorted({code_of(p) for p in res.problems})
    # the first defect's own code (``invariants``: stream.*, body.*, usage.*, calls.*), all in ``codes``
    expect(not res.problems, f"{what}: protocol defects: {res.problems[:5]}",
           code_of(res.problems[0]) if res.problems else None, codes=codes)


def markup_code(tag: str, field: str) -> str:
    """``tool_call.markup_in_content`` / ``reasoning.tag_in_content`` (``_in_reasoning``)."""
    return f"tool_call.markup_in_{field}" if tag in TOOL_MARKUP else f"reasoning.tag_in_{field}"


def no_markup(res: ChatResult, tags=THINK_TAGS + TOOL_MARKUP) -> None:
    for field in ("content", "reasoning"):
        text = getattr(res, field) or ""
        for tag in tags:
            expect(tag not in text, f"raw {tag!r} left in {field}: {text[:200]!r}", markup_code(tag, field), tag=tag)


def split_ok(res: ChatResult) -> None:
    """Thinking on: reasoning non-empty in its own field, content non-empty, no tags in either."""
    no_problems(res)
    content = res.content or ""
    expect(bool(res.reasoning and res.reasoning.strip()),
           f"expected reasoning in 'reasoning' or 'reasoning_content', got none (content={res.content!r:.200})",
           "reasoning.missing", think_end_in_content="</think>" in content, content_chars=len(content))
    expect(bool(res.content and res.content.strip()),
           f"expected non-empty content; got {res.content!r} with reasoning {res.reasoning!r:.200} "
           "(the whole answer landed in reasoning)", "reasoning.content_empty", reasoning_chars=len(res.reasoning or ""))
    no_markup(res, THINK_TAGS)


def words(text: str | None) -> int:
    return len(re.findall(r"\S+", text or ""))


class Inconclusive(pytest.skip.Exception):
    """The sample budget ran out before the check could decide (never verified, never failed);
    ``code`` and ``fields`` as a ``Failure``'s (what stayed undecided)."""

    def __init__(self, msg: str = "", code: str | None = None, **fields: Any):
        super().__init__(msg)
        self.code = code
        self.fields = {k: _small(v) for k, v in fields.items()}


def _decision_fields(d: Decision) -> dict[str, Any]:
    return {"rule": d.rule, "estimate": d.estimate, "n": d.n, "verify_bound": d.verify_bound,
            "fail_bound": d.fail_bound}


def _code(d: Decision, code) -> str | None:
    if d.rule.startswith("serving_errors["):
        return SERVING_CODE
    return code(d) if callable(code) else code


def conclude(*decisions: Decision, evidence=None, context: str = "", code=None) -> None:
    """Record every decision in the evidence (under ``decisions``), then end the check by the
    worst of them: any failed fails it, else any inconclusive makes it inconclusive. ``code`` is
    the check's (e.g. ``tool_call.calls_rate_below_bar``), or a function of the decision where
    one check decides different things; a serving-error bar's decision has its own
    (``SERVING_CODE``), and the failure takes the check's code whenever a measure of its own failed."""
    if evidence is not None:
        evidence.setdefault("decisions", []).extend(d.evidence() for d in decisions)
    prefix = context + ": " if context else ""
    for status, exc in ((FAILED, Failure), (INCONCLUSIVE, Inconclusive)):
        hit = [d for d in decisions if d.status == status]
        if hit:
            first = next((d for d in hit if _code(d, code) != SERVING_CODE), hit[0])
            codes = sorted({c for d in hit if (c := _code(d, code))})
            text = ("" if status == FAILED else "INCONCLUSIVE: ") + prefix + "; ".join(d.summary() for d in hit)
            raise exc(text, _code(first, code), codes=codes, **_decision_fields(first))


def failure_detail(excinfo) -> str:
    """A failed check's detail as pytest words an ``AssertionError`` (``AssertionError: message``),
    coded or not: the wording a reader (and an uncoded recording) knows stays the same."""
    if isinstance(excinfo.value, Failure):
        return f"AssertionError: {excinfo.value}"
    return excinfo.exconly()
