"""Small assertion helpers shared by the suites: every failure says what was expected and what came back."""
from __future__ import annotations

import re

from .chat import ChatResult

THINK_TAGS = ("<think>", "</think>")
TOOL_MARKUP = ("<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>")


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
