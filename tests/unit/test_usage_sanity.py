"""Usage sanity (glmverify.chat.usage_problems) on hand-written bodies and streams.

The counts every answer is checked for: prompt tokens, completion tokens when there is output,
total = prompt + completion, reasoning tokens within the completion (both places engines report
them), completion within max_tokens. A conforming usage has no problem; each broken rule is named.
"""
from __future__ import annotations

import json

import pytest

from glmverify.chat import StreamAssembler, parse_completion, usage_problems

GOOD = {"prompt_tokens": 77, "completion_tokens": 340, "total_tokens": 417,
        "completion_tokens_details": {"reasoning_tokens": 217}}
SGLANG = {"prompt_tokens": 77, "completion_tokens": 368, "total_tokens": 445, "prompt_tokens_details": None,
          "reasoning_tokens": 236, "completion_tokens_details": {"reasoning_tokens": 236}}


def body(usage, content="Paris"):
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content, "reasoning": "r"},
                         "finish_reason": "stop"}], "usage": usage}


def test_conforming_usage_has_no_problem():
    assert usage_problems(GOOD, {"max_tokens": 8192}) == []
    assert usage_problems(SGLANG, {"max_tokens": 368}) == []
    assert usage_problems({}, {"max_tokens": 1}) == [] and usage_problems(None) == []  # nothing to check
    assert usage_problems({"prompt_tokens": 5, "completion_tokens": 0, "total_tokens": 5}, has_output=False) == []
    assert parse_completion(body(GOOD), {"max_tokens": 8192}).problems == []


BAD = {
    "usage: prompt_tokens 0 (every prompt has tokens)": {**GOOD, "prompt_tokens": 0, "total_tokens": 340},
    "usage: no prompt_tokens": {"completion_tokens": 3},
    "usage: completion_tokens 0 although the answer has output": {"prompt_tokens": 5, "completion_tokens": 0, "total_tokens": 5},
    "usage: total_tokens 400 != prompt_tokens 77 + completion_tokens 340": {**GOOD, "total_tokens": 400},
    "usage: completion_tokens_details.reasoning_tokens 341 exceeds completion_tokens 340":
        {**GOOD, "completion_tokens_details": {"reasoning_tokens": 341}},
    "usage: reasoning_tokens 400 exceeds completion_tokens 368": {**SGLANG, "reasoning_tokens": 400},
    "usage: completion_tokens 340 exceeds max_tokens 100": GOOD,
    "usage: prompt_tokens is '77', not a non-negative integer": {**GOOD, "prompt_tokens": "77"},
    "usage: completion_tokens is -1, not a non-negative integer": {**GOOD, "completion_tokens": -1},
}


@pytest.mark.parametrize("needle", list(BAD))
def test_each_broken_count_is_named(needle):
    problems = parse_completion(body(BAD[needle]), {"max_tokens": 100 if "max_tokens" in needle else 8192}).problems
    assert any(needle in p for p in problems), problems
    assert next(p for p in problems if needle in p).code == CODES[needle]


#: the stable code of each broken count (glmverify.invariants.usage_violations)
CODES = dict(zip(BAD, ["usage.prompt_zero", "usage.no_prompt_tokens", "usage.completion_zero", "usage.total_mismatch",
                       "usage.reasoning_exceeds_completion", "usage.reasoning_exceeds_completion",
                       "usage.exceeds_max_tokens", "usage.not_a_count", "usage.not_a_count"]))


def test_max_completion_tokens_counts_too():
    assert usage_problems(GOOD, {"max_completion_tokens": 300}) == ["usage: completion_tokens 340 exceeds max_tokens 300"]


def _stream(usage):
    chunks = [{"choices": [{"index": 0, "delta": {"reasoning": "r"}, "finish_reason": None}]},
              {"choices": [{"index": 0, "delta": {"content": "Paris"}, "finish_reason": None}]},
              {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
    if usage is not None:
        chunks.append({"choices": [], "usage": usage})
    asm = StreamAssembler({"max_tokens": 8192})
    for c in chunks:
        asm.feed_line("data: " + json.dumps(c))
    asm.feed_line("data: [DONE]")
    return asm.result()


def test_stream_usage_chunk_checked():
    assert _stream(GOOD).problems == []
    assert _stream(None).problems == []  # a stream without a usage chunk: nothing to check
    bad = _stream({**GOOD, "completion_tokens_details": {"reasoning_tokens": 999}})
    assert bad.problems == ["usage: completion_tokens_details.reasoning_tokens 999 exceeds completion_tokens 340 "
                            "(reasoning tokens are part of the completion)"]
