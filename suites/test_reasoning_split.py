"""reasoning_split: with thinking on (default effort) reasoning and answer arrive in separate fields.

Reasoning may be named ``reasoning`` or ``reasoning_content`` (recorded); both fields must be
non-empty and free of ``<think>``/``</think>``. In a stream every reasoning delta precedes the first
content delta and the stream ends with a finish_reason and ``[DONE]``. The whole answer landing in
reasoning (SGLang #37645) is a failure, not a pass with empty content.

The prompts of ``test_split`` are bare requests (no ``chat_template_kwargs``): the guides' default is
thinking on. When one does not split, the same prompt is sent again with thinking switched on
explicitly and the message says whether that one splits (a default that no longer thinks, SGLang
#26036, against a model or parser that never splits, SGLang #37645).

Every check here is an invariant of a thinking-on answer (``glmverify.behaviour``): reasoning in its
own field, content non-empty, no tags, the stream's order, the finish reason. What the answer says
(one word for the capital, three primes) is the model's behaviour and is not judged here; two
independent answers (stream and non-stream) are never required to be alike.

Input side (``test_reasoning_sent_back_rendered``): earlier reasoning a client sends back must reach
the template under every field name the engine reads (its adapter's ``input_reasoning_fields``;
vLLM reads ``reasoning`` and ``reasoning_content``, SGLang ``reasoning_content``). Decided on
``usage.prompt_tokens``, which is exact: the same prompt under each name, longer than with the
reasoning omitted (vLLM #38488 dropped ``reasoning_content`` silently).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from glmverify.chat import Chat
from glmverify.checks import Failure, expect, split_ok

pytestmark = pytest.mark.feature("reasoning_split")

PROMPTS = [
    "What is the capital of France? Answer in one word.",
    "Explain in two sentences why the sky is blue.",
    "List three prime numbers greater than 10.",
    "Summarize GLM-5.2 in one sentence.",
]


def test_split(chat, engine, evidence):
    results = chat.many({"messages": [{"role": "user", "content": p}]} for p in PROMPTS)
    evidence.add(reasoning_field=results[0].reasoning_field, samples=chat.log[:2], n=len(results),
                 observed={"reasoning field": results[0].reasoning_field})
    for prompt, res in zip(PROMPTS, results):
        try:
            split_ok(res)
        except AssertionError as exc:
            said, splits = _explicit_thinking(chat, engine, prompt, evidence)
            # the same prompt splits with thinking on explicitly: the default is what is wrong
            raise Failure(f"bare request (no chat_template_kwargs): {exc}; {said}",
                          "reasoning.default_not_thinking" if splits else getattr(exc, "code", None),
                          bare=getattr(exc, "code", None), **getattr(exc, "fields", {})) from None
        expect(res.finish_reason == "stop", f"expected finish_reason 'stop', got {res.finish_reason!r}",
               "reasoning.finish_reason", got=res.finish_reason, mode=_mode(res))
    fields = {r.reasoning_field for r in results}
    expect(len(fields) == 1, f"reasoning arrived under different field names across requests: {fields}",
           "reasoning.field_name_varies", names=fields)


def _mode(res) -> str:
    return "stream" if res.stream else "non-stream"


def _explicit_thinking(chat, engine, prompt: str, evidence) -> tuple[str, bool]:
    """What the same prompt gives with thinking switched on explicitly (said in the failure), and
    whether it splits."""
    kwargs = {engine.profile.thinking_variable: True}
    res = chat.one(messages=[{"role": "user", "content": prompt}], chat_template_kwargs=kwargs)
    evidence.add(explicit_thinking_on=res.excerpt(200))
    try:
        split_ok(res)
    except AssertionError as exc:
        return f"with chat_template_kwargs {kwargs} it fails too: {str(exc)[:160]}", False
    return (f"with chat_template_kwargs {kwargs} the same prompt splits: the default is not thinking on "
            "(a bare request must think, as the guides' default)"), True


def test_multi_turn_reasoning_sent_back(chat, evidence):
    """Earlier reasoning sent back with the assistant turn (as clients do) must not break splitting."""
    first = chat.one(messages=[{"role": "user", "content": "Name a color of the rainbow."}])
    split_ok(first)
    field = first.reasoning_field or "reasoning"
    history = [
        {"role": "user", "content": "Name a color of the rainbow."},
        {"role": "assistant", "content": first.content, field: first.reasoning},
        {"role": "user", "content": "Now name another one, different from the first."},
    ]
    second = chat.one(messages=history)
    evidence.add(turns=chat.log)
    split_ok(second)
    expect(second.finish_reason == "stop", f"turn 2: expected finish_reason 'stop', got {second.finish_reason!r}",
           "reasoning.finish_reason", got=second.finish_reason, mode=_mode(second), turn=2)


TOOLS = json.loads((Path(__file__).parent / "cases" / "tools.json").read_text())
EARLIER_REASONING = ("The user wants the weather in Paris for two days; get_weather takes city and days, "
                     "so I call it with city Paris and days 2 and then report what it returns.")


def _tool_loop(field: str | None) -> list[dict]:
    """A tool-call turn and its result after the last user message: the template keeps this turn's
    reasoning (the current tool loop), so what the engine read of it is in the prompt."""
    call = {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris", "days": 2})}}]}
    if field:
        call[field] = EARLIER_REASONING
    return [{"role": "user", "content": "What is the weather in Paris for the next 2 days?"}, call,
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C both days"}]


def test_reasoning_sent_back_rendered(chat_nonstream, engine, evidence):
    """Earlier reasoning sent back under each name the engine reads renders the same prompt, longer
    than the prompt without it: exact ``prompt_tokens`` (one-token answers; no sampling involved)."""
    names = engine.adapter.input_reasoning_fields
    expect(bool(names), f"{engine.adapter!r} declares no input reasoning field", "harness.no_input_reasoning_field")
    variants = [None, *names]
    results = chat_nonstream.many({"messages": _tool_loop(f), "tools": [TOOLS["get_weather"]], "max_tokens": 1}
                                  for f in variants)
    tokens = {}
    for f, res in zip(variants, results):
        label = f or "omitted"
        expect(res.error is None, f"reasoning sent back as {label!r}: request failed: {res.error}", "request.failed",
               error=str(res.error)[:120], field=label)
        n = res.usage.get("prompt_tokens")
        expect(isinstance(n, int) and n > 0, f"reasoning sent back as {label!r}: no usage.prompt_tokens ({res.usage})",
               "usage.prompt_tokens_unusable", field=label)
        tokens[label] = n
    evidence.add(input_reasoning_fields=list(names), prompt_tokens=tokens,
                 observed={"input reasoning fields": ", ".join(names)})
    dropped = [f for f in names if tokens[f] <= tokens["omitted"]]
    expect(not dropped, "earlier reasoning sent back as " + ", ".join(repr(f) for f in dropped)
           + f" was dropped (not rendered): prompt_tokens {', '.join(str(tokens[f]) for f in dropped)}, "
           f"no more than with the reasoning omitted ({tokens['omitted']}); all: {tokens}",
           "reasoning.sent_back_dropped", dropped=dropped, prompt_tokens=str(tokens))
    expect(len({tokens[f] for f in names}) == 1,
           f"earlier reasoning renders differently by field name: prompt_tokens {tokens}",
           "reasoning.sent_back_differs", prompt_tokens=str(tokens))


def test_stream_matches_nonstream(chat_nonstream, engine, evidence):
    """Every row: each prompt streamed and not, and every answer of both holds to the split's
    invariants (``split_ok``: reasoning in its field, content non-empty, no tags; finish reason
    ``stop``). Two independent samples are not compared with each other: what they share on a
    conforming engine is exactly these invariants, so this holds on sampled GPU rows.

    Rows that declare ``expect.deterministic`` (seeded sampling is reproducible there) also send the
    same ``seed`` in both and compare the text exactly: a dropped, duplicated or re-split delta
    changes the text even when every chunk is valid. A seed, not greedy decoding: identity needs
    the same sample, not a different decoding mode (greedy makes reasoning models loop)."""
    streaming = Chat(engine, stream=True, concurrency=chat_nonstream.concurrency, timeout=chat_nonstream.timeout)
    reqs = [{"messages": [{"role": "user", "content": p}]} for p in PROMPTS]
    plain, streamed = chat_nonstream.many(reqs), streaming.many(reqs)
    evidence.add(nonstream=plain[1].excerpt(200), stream=streamed[1].excerpt(200))
    for p, a, b in zip(PROMPTS, plain, streamed):
        for res in (a, b):
            split_ok(res)
            expect(res.finish_reason == "stop", f"{p[:40]!r} {'stream' if res.stream else 'non-stream'}: expected "
                                                f"finish_reason 'stop', got {res.finish_reason!r}",
                   "reasoning.finish_reason", got=res.finish_reason, mode=_mode(res))
    if not engine.row.expect.get("deterministic"):
        return
    req = {"messages": [{"role": "user", "content": PROMPTS[1]}], "seed": 20261129}
    a, b = chat_nonstream.one(**req), streaming.one(**req)
    evidence.add(seeded_nonstream=a.excerpt(200), seeded_stream=b.excerpt(200))
    split_ok(a)
    split_ok(b)
    for field in ("reasoning", "content"):
        x, y = getattr(a, field), getattr(b, field)
        if x != y:
            at = next((i for i, (u, v) in enumerate(zip(x, y)) if u != v), min(len(x), len(y)))
            raise Failure(f"seeded stream {field} differs from non-stream at char {at}: "
                          f"{x[max(0, at - 20):at + 20]!r} vs {y[max(0, at - 20):at + 20]!r}",
                          "stream.seeded_text_differs", field=field, at=at, stream_chars=len(y), nonstream_chars=len(x))
