"""context_1m: the row's own context window is served and usable end to end.

The feature keeps its id, but the window is the row's: ``expect.context``, the recipe's
``--max-model-len`` / ``--context-length`` (or, where its flags set none, the guide's words in
``expect.context_claim``): 1,048,576 only where a recipe claims 1M, 524,288 on ROCm, 20,480 to
200,000 on Ascend, 32,000 for the sizing guide, 16,384 on the reference. A row whose recipe claims
no window is skipped with that reason (its cell keeps its declared ``not_run``), never graded
against 1M. ``/v1/models`` reports ``max_model_len`` of at least the window; a needle is retrieved
at several depths from a haystack filled to within 2% of it, sized with the engine's own tokenizer
in a bounded number of calls (``adapters``: ``prompt_token_counter``); a prompt just over the limit gets a clean 4xx and the engine stays
healthy.
"""
from __future__ import annotations

import secrets

import openai
import pytest

from glmverify import haystack
from glmverify.chat import Chat
from glmverify.checks import expect

pytestmark = pytest.mark.feature("context_1m")

DEPTHS = (0.1, 0.5, 0.9)
ANSWER_TOKENS = 64


def token_counter(engine):
    """Counts prompt tokens of chat messages as the engine renders them (its adapter's way: vLLM
    ``/tokenize``, else a one-token completion's ``prompt_tokens``)."""
    return engine.adapter.prompt_token_counter(engine.client, {engine.profile.thinking_variable: False})


def window(engine) -> int:
    """The row's claimed window; skips the check where no recipe claims one."""
    want = engine.row.expect.get("context")
    if want is None:
        pytest.skip(f"{engine.row.id}: no recipe claims a context window for this row; "
                    f"declared: {engine.row.declared_cell('context_1m').basis}")
    return int(want)


def test_max_model_len(engine, evidence):
    want = window(engine)
    got = engine.client.max_model_len()
    evidence.add(max_model_len=got, expected=want, window=want, context_reached=got)
    expect(got is not None, "/v1/models reports no max_model_len")
    expect(got >= want, f"/v1/models max_model_len {got} is below the row's context {want}")


def test_needles(engine, options, evidence):
    context = window(engine)
    count = token_counter(engine)
    target = context - ANSWER_TOKENS - 8
    cases = []
    for depth in DEPTHS:
        value = f"{secrets.choice(['amber', 'cobalt', 'violet', 'scarlet'])}-{secrets.token_hex(3)}"
        hs = haystack.build(count, target, [(depth, haystack.NEEDLE.format(value=value))], exact=False)
        cases.append((depth, value, hs))
    chat = Chat(engine, stream=False, concurrency=options.concurrency, timeout=max(options.request_timeout, 600))
    results = chat.many({"messages": hs.messages, "max_tokens": ANSWER_TOKENS,
                         "chat_template_kwargs": {engine.profile.thinking_variable: False}} for _, _, hs in cases)
    needles = []
    for (depth, value, hs), res in zip(cases, results):
        # the engine's own count of the prompt it served is the measurement
        tokens = res.usage.get("prompt_tokens") if isinstance(res.usage.get("prompt_tokens"), int) else hs.tokens
        needles.append({"depth": depth, "tokens": tokens, "estimated": hs.tokens, "found": value in (res.content or ""),
                        "error": res.error,
                        "value": value, "answer": (res.content or "")[:120], "tokenize_calls": hs.tokenize_calls,
                        "prompt_tokens": res.usage.get("prompt_tokens")})
    evidence.add(context=context, window=context, needles=needles, context_reached=max(n["tokens"] for n in needles),
                 fill=round(max(n["tokens"] for n in needles) / context, 4))
    for n in needles:
        expect(n["tokenize_calls"] <= 8, f"haystack sizing took {n['tokenize_calls']} tokenizer calls")
        expect(n["tokens"] >= 0.98 * context, f"haystack of {n['tokens']} tokens is not within 2% of the context {context}")
        expect(n["found"], f"needle {n['value']!r} at depth {n['depth']} of a {n['tokens']}-token prompt "
                           f"not retrieved; answer {n['answer']!r}")


def test_over_limit_rejected(engine, evidence):
    context = window(engine)
    got = engine.client.max_model_len() or context
    hs = haystack.build(token_counter(engine), got + 64, [], exact=False, margin=-0.002)
    client = engine.client.openai(timeout=600)
    status, message = None, ""
    try:
        client.chat.completions.create(model=engine.model, messages=hs.messages, max_tokens=16)
    except openai.APIStatusError as exc:
        status, message = exc.status_code, str(exc)[:300]
    evidence.add(prompt_tokens=hs.tokens, max_model_len=got, status=status, message=message)
    expect(status is not None and 400 <= status < 500,
           f"a {hs.tokens}-token prompt over max_model_len {got} should get a 4xx, got {status or 'a completion'}")
    expect(engine.client.healthy(), "engine unhealthy after an over-limit prompt")
    ok = client.chat.completions.create(model=engine.model, messages=[{"role": "user", "content": "Hi"}], max_tokens=16)
    expect(ok.choices and ok.choices[0].finish_reason is not None, "engine did not answer a small request after the over-limit prompt")
