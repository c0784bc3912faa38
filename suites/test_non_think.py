"""non_think: ``chat_template_kwargs: {enable_thinking: false}`` turns reasoning off.

No reasoning, non-empty content without think tags, far fewer completion tokens than with thinking
on, in streams too; tools are still parsed. Passing the wrong variable (``thinking: false``, the
profile's ``wrong_thinking_variables``) is recorded: it must NOT turn thinking off on a conforming
GLM-5.2 template, and an engine where it does is rendering a different template.
"""
from __future__ import annotations

import pytest

from glmverify.checks import THINK_TAGS, expect, no_markup, no_problems

pytestmark = pytest.mark.feature("non_think")

PROMPTS = [
    "What is 2 + 2? Answer briefly.",
    "Name the largest planet of the solar system.",
    "Give one synonym of 'quick'.",
    "Which ocean lies between Europe and America?",
]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                   "required": ["city", "days"]}}}


def _off(engine) -> dict:
    return {"chat_template_kwargs": {engine.profile.thinking_variable: False}}


def test_no_reasoning(chat, engine, evidence):
    off = chat.many({"messages": [{"role": "user", "content": p}], **_off(engine)} for p in PROMPTS)
    on = chat.many({"messages": [{"role": "user", "content": p}]} for p in PROMPTS)
    off_tokens = [r.completion_tokens for r in off]
    on_tokens = [r.completion_tokens for r in on]
    evidence.add(off_tokens=off_tokens, on_tokens=on_tokens, sample=chat.log[0])
    for r in off:
        no_problems(r)
        expect(not r.reasoning, f"thinking off: expected no reasoning, got {r.reasoning!r:.200}")
        expect(bool(r.content and r.content.strip()), f"thinking off: expected content, got {r.content!r}")
        no_markup(r, THINK_TAGS)
    expect(all(isinstance(t, int) for t in off_tokens + on_tokens), f"usage.completion_tokens missing: off={off_tokens} on={on_tokens}")
    ratio = sum(off_tokens) / max(1, sum(on_tokens))
    evidence.add(ratio_off_on=round(ratio, 3))
    expect(ratio < 0.5, f"thinking off used {sum(off_tokens)} completion tokens vs {sum(on_tokens)} with thinking on "
                        f"(ratio {ratio:.2f}, expected < 0.5)")


def test_tools_still_parsed(chat, engine, evidence):
    res = chat.one(messages=[{"role": "user", "content": "Use get_weather for city Paris over 3 days."}],
                   tools=[WEATHER], tool_choice="auto", **_off(engine))
    evidence.add(exchange=chat.log[-1])
    no_problems(res)
    expect(not res.reasoning, f"thinking off: expected no reasoning, got {res.reasoning!r:.200}")
    expect(len(res.tool_calls) >= 1, f"thinking off: expected a parsed tool call, got content {res.content!r:.200}")
    expect(res.tool_calls[0].name == "get_weather", f"expected get_weather, got {res.tool_calls[0].name!r}")
    expect(res.finish_reason == "tool_calls", f"expected finish_reason tool_calls, got {res.finish_reason!r}")
    no_markup(res)


def test_wrong_variable_recorded(chat_nonstream, engine, evidence):
    """``thinking: false`` is not the GLM-5.2 switch: the model must still think.

    Judged by what the model generated (completion tokens against the real switch), not by where
    the engine put it: vLLM 0.32's GLM parser reads ``thinking`` and stops splitting while the
    template (reading ``enable_thinking``) keeps thinking on, so the reasoning leaks into content.
    That leak is recorded in the evidence.
    """
    wrong = engine.profile.wrong_thinking_variables
    if not wrong:
        pytest.skip("profile lists no wrong thinking variables")
    msgs = [{"role": "user", "content": PROMPTS[0]}]
    reqs = [{"messages": msgs}, {"messages": msgs, **_off(engine)}]
    reqs += [{"messages": msgs, "chat_template_kwargs": {v: False}} for v in wrong]
    on, off, *rest = chat_nonstream.many(reqs)
    for r in (on, off, *rest):
        no_problems(r)
    observed = {}
    for v, r in zip(wrong, rest):
        still_thinking = (r.completion_tokens or 0) > 2 * (off.completion_tokens or 0) or bool(r.reasoning)
        leaked = bool(not r.reasoning and still_thinking)
        observed[v] = {"still_thinking": still_thinking, "completion_tokens": r.completion_tokens,
                       "reasoning_in_field": bool(r.reasoning), "reasoning_leaked_into_content": leaked,
                       "content_head": (r.content or "")[:160]}
    evidence.add(wrong_variables=observed, on_tokens=on.completion_tokens, off_tokens=off.completion_tokens)
    for v, o in observed.items():
        expect(o["still_thinking"], f"chat_template_kwargs {{{v!r}: false}} turned thinking off "
                                    f"({o['completion_tokens']} tokens vs {off.completion_tokens} with "
                                    f"{engine.profile.thinking_variable}: false): the template reads {v!r}")
