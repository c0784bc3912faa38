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

One needle test at the full window misses defects that start at a length (output corrupted once
prompt plus output passes ~4k tokens, vLLM #47827; tool calls broken near the window on
``/v1/messages``, vLLM #42400), so ``test_context_sweep`` walks the lengths: sizes doubling from
2,048 tokens up to the window minus headroom (``haystack.sweep_sizes``), a needle retrieved at
each, and where the row serves ``/v1/messages`` a tool call there at every size from half the
window up. Each prompt extends the previous one's text (``haystack.sweep``), and the requests are
sequential, so an engine's prefix cache computes only the new part: the sweep costs about one
window of prefill per chain (needle, tool; the tools are rendered before the text, so the chains
share nothing), MEASURED from the engine's own prefix-cache count (the adapter's
``prefix_cache_meter``: vLLM's ``vllm:prefix_cache_*`` counters, SGLang's ``meta_info``) and
recorded next to the sum of the prompt lengths. A failure names the size it starts at ("from N
tokens up"), the sizes below it that passed, and per size the result in the evidence.

Invariants and behaviour (``glmverify.behaviour``): an answer, a clean 4xx over the limit, no
markup, a schema-valid call and its stop reason are hard; whether the model retrieves a needle
or makes the call is sampled. ``test_needles`` decides the retrieval rate over rounds of the
depths; the sweep asks a size again (up to ``SWEEP_ATTEMPTS``, from the prefix cache) when its
needle or call is missing, so a size fails only when every attempt misses (a conforming model
missing 2% fails a size with P ~ 1e-5), while a length-dependent defect misses every time.
"""
from __future__ import annotations

import json
import secrets
from pathlib import Path

import jsonschema
import openai
import pytest

from glmverify import behaviour, haystack, policy
from glmverify.chat import Chat
from glmverify.checks import TOOL_MARKUP, conclude, expect
from glmverify.verdicts import run_sequential

pytestmark = pytest.mark.feature("context_1m")

DEPTHS = (0.1, 0.5, 0.9)
NEEDLE_LOOKS = (3, 6, 12)  # needles, one per depth per round (behaviour.BARS["needles"])
SWEEP_ATTEMPTS = 3         # a size's needle or tool call missed is asked again (a sample, not yet a defect)
NO_TOOL_USE = "no tool_use block"
ANSWER_TOKENS = 64
TOOL = json.loads((Path(__file__).parent / "cases" / "tools.json").read_text())["get_weather"]["function"]
TOOL_ASK = "Call get_weather for city Tokyo and days 2."
TOOL_MAX_TOKENS = 1536   # room for thinking plus the call (the stand-in's take ~300-400 tokens)
TOOL_RENDER_TOKENS = 1024  # the offered tool as the template renders it before the text (~800 on the stand-in)
TOOL_FROM = 0.5          # sizes at or above this fraction of the window also get a tool call


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
    expect(got is not None, "/v1/models reports no max_model_len", "context.window_unreported")
    expect(got >= want, f"/v1/models max_model_len {got} is below the row's context {want}",
           "context.window_below_claim", max_model_len=got, claimed=want)


@pytest.mark.behaviour
def test_needles(engine, options, evidence):
    """Needles at ``DEPTHS`` of a full-window haystack. The haystack's size (within 2% of the
    window, in few tokenizer calls) and every request answering are hard; retrieving the needle is
    behaviour (a model may miss one now and then): a rate over rounds of the depths, decided by
    ``behaviour.BARS["needles"]`` (looks ``NEEDLE_LOOKS``). A conforming engine decides on the first
    round; each further round sends every depth again with new values."""
    context = window(engine)
    count = token_counter(engine)
    target = context - ANSWER_TOKENS - 8
    chat = Chat(engine, stream=False, concurrency=options.concurrency, timeout=max(options.request_timeout, 600))
    needles: list[dict] = []

    def draw(k: int):
        cases = []
        for i in range(k):
            depth = DEPTHS[i % len(DEPTHS)]
            value = f"{secrets.choice(['amber', 'cobalt', 'violet', 'scarlet'])}-{secrets.token_hex(3)}"
            hs = haystack.build(count, target, [(depth, haystack.NEEDLE.format(value=value))], exact=False)
            cases.append((depth, value, hs))
        results = chat.many({"messages": hs.messages, "max_tokens": ANSWER_TOKENS,
                             "chat_template_kwargs": {engine.profile.thinking_variable: False}} for _, _, hs in cases)
        found = []
        for (depth, value, hs), res in zip(cases, results):
            # the engine's own count of the prompt it served is the measurement
            tokens = res.usage.get("prompt_tokens") if isinstance(res.usage.get("prompt_tokens"), int) else hs.tokens
            n = {"depth": depth, "tokens": tokens, "estimated": hs.tokens, "found": value in (res.content or ""),
                 "error": res.error, "value": value, "answer": (res.content or "")[:120],
                 "tokenize_calls": hs.tokenize_calls, "prompt_tokens": res.usage.get("prompt_tokens")}
            needles.append(n)
            expect(n["tokenize_calls"] <= 8, f"haystack sizing took {n['tokenize_calls']} tokenizer calls",
                   "harness.haystack_sizing", tokenize_calls=n["tokenize_calls"])
            expect(n["tokens"] >= 0.98 * context, f"haystack of {n['tokens']} tokens is not within 2% of the context {context}",
                   "context.haystack_short", tokens=n["tokens"], context=context)
            expect(res.error is None, f"needle request at depth {depth} of a {n['tokens']}-token prompt failed: {res.error}",
                   "context.request_failed", depth=depth, tokens=n["tokens"], error=str(res.error)[:120])
            if not res.truncated:
                found.append(n["found"])
        return found, k

    part = behaviour.part_alpha(engine.row, policy.alpha(engine.row, policy.rendered_prompt(engine.client.engine)))
    rule = behaviour.rate_rule("needles", part, NEEDLE_LOOKS, name="context_1m[needles]")
    decision, _ = run_sequential(rule, draw)
    evidence.add(context=context, window=context, needles=needles, context_reached=max(n["tokens"] for n in needles),
                 fill=round(max(n["tokens"] for n in needles) / context, 4))
    missed = [n for n in needles if not n["found"]]
    conclude(decision, evidence=evidence, code="context.needle_rate_below_bar", context=(
        f"needle {missed[0]['value']!r} at depth {missed[0]['depth']} of a {missed[0]['tokens']}-token prompt "
        f"not retrieved; answer {missed[0]['answer']!r} ({len(missed)} of {len(needles)} missed)") if missed else "needles")


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
           f"a {hs.tokens}-token prompt over max_model_len {got} should get a 4xx, got {status or 'a completion'}",
           "context.over_limit_not_4xx", status=status, prompt_tokens=hs.tokens, max_model_len=got)
    expect(engine.client.healthy(), "engine unhealthy after an over-limit prompt", "context.unhealthy_after_over_limit")
    ok = client.chat.completions.create(model=engine.model, messages=[{"role": "user", "content": "Hi"}], max_tokens=16)
    expect(ok.choices and ok.choices[0].finish_reason is not None, "engine did not answer a small request after the over-limit prompt",
           "context.no_answer_after_over_limit")


def _chain_cost(steps: list[dict]) -> dict:
    """Prefill of one chain: prompt tokens summed, served from the cache, and computed. A step whose
    count may include other clients' requests (``clean`` False: engine-wide counters on a shared
    server) is clipped to its own prompt and named, so the total is then a bound, not a measurement."""
    prompts = sum(s["prompt_tokens"] or 0 for s in steps)
    known = [s for s in steps if s.get("cached") is not None and s["prompt_tokens"] is not None]
    cached = sum(min(max(s["cached"], 0), s["prompt_tokens"]) for s in known)
    complete = bool(steps) and len(known) == len(steps)
    return {"requests": len(steps), "prompt_tokens_sum": prompts,
            "largest_prompt": max((s["prompt_tokens"] or 0 for s in steps), default=0),
            "cached_tokens": cached if complete else None,
            "computed_tokens": prompts - cached if complete else None,
            "clean": all(s.get("clean") for s in steps) if known else None,
            "shared_steps": [s["size"] for s in known if not s.get("clean")]}


def _from_size(steps: list[dict], what: str) -> str | None:
    """The failure message of a chain: the size failures start at, what passed below it."""
    bad = [s for s in steps if not s["ok"]]
    if not bad:
        return None
    first = bad[0]
    passed = [s["prompt_tokens"] for s in steps if s["ok"] and s["size"] < first["size"]]
    where = (f"from {first['prompt_tokens']} tokens up (passed at {passed})" if passed
             else f"at every size of the sweep, from {first['prompt_tokens']} tokens")
    return (f"{what} {where}; failing sizes {[s['prompt_tokens'] for s in bad]}; first failure: {first['detail']}")


def _onset(steps: list[dict]) -> dict:
    """The decisive values of a chain's failure: where it starts, and whether smaller sizes passed."""
    bad = [s for s in steps if not s["ok"]]
    if not bad:
        return {}
    return {"from_tokens": bad[0]["prompt_tokens"],
            "passed_below": any(s["ok"] and s["size"] < bad[0]["size"] for s in steps)}


def _anthropic_tool_call(body: dict) -> str | None:
    """What is wrong with a /v1/messages answer that must call get_weather (None: nothing)."""
    blocks = body.get("content") if isinstance(body, dict) else None
    if not isinstance(blocks, list):
        return f"no content blocks: {str(body)[:200]}"
    text = " ".join(b.get("text") or "" for b in blocks if isinstance(b, dict) and b.get("type") == "text")
    raw = [t for t in TOOL_MARKUP if t in text]
    uses = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"]
    if raw:
        return f"raw tool-call markup {raw[:2]} in a text block and {len(uses)} tool_use blocks: {text[-160:]!r}"
    if not uses:
        return f"{NO_TOOL_USE} (blocks {[b.get('type') for b in blocks if isinstance(b, dict)]}, stop_reason {body.get('stop_reason')!r})"
    if uses[0].get("name") != TOOL["name"]:
        return f"tool_use name {uses[0].get('name')!r}, expected {TOOL['name']!r}"
    try:
        jsonschema.validate(uses[0].get("input"), TOOL["parameters"])
    except jsonschema.ValidationError as exc:
        return f"tool_use input {uses[0].get('input')} invalid: {exc.message}"
    if body.get("stop_reason") != "tool_use":
        return f"stop_reason {body.get('stop_reason')!r} with a tool_use block, expected 'tool_use'"
    return None


def test_context_sweep(engine, options, evidence):
    context = window(engine)
    tools = engine.row.serves("anthropic_messages")
    sizes = haystack.sweep_sizes(context, (TOOL_MAX_TOKENS + TOOL_RENDER_TOKENS if tools else ANSWER_TOKENS) + 64)
    value = f"{secrets.choice(['amber', 'cobalt', 'violet', 'scarlet'])}-{secrets.token_hex(3)}"
    stages = haystack.sweep(token_counter(engine), sizes, haystack.NEEDLE.format(value=value), reserve=ANSWER_TOKENS + 8)
    meter = engine.adapter.prefix_cache_meter(engine.client)
    needles: list[dict] = []
    calls: list[dict] = []
    timeout = max(options.request_timeout, 600)
    with engine.client.http(timeout=timeout) as h:
        # sequential on purpose: each prompt finds the previous one's text in the prefix cache
        for st in stages:
            meter.start()
            r = h.post("/v1/chat/completions", json={
                "model": engine.model, "messages": st.messages(), "max_tokens": ANSWER_TOKENS,
                "chat_template_kwargs": {engine.profile.thinking_variable: False}, **meter.fields("chat")})
            body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
            usage = body.get("usage") or {}
            content = ((body.get("choices") or [{}])[0].get("message") or {}).get("content") or ""
            prompt = usage.get("prompt_tokens") if isinstance(usage.get("prompt_tokens"), int) else None
            metered = meter.read(body, prompt)  # the first attempt's prefill; a retry finds it all cached
            attempts = 1
            while r.status_code == 200 and value not in content and attempts < SWEEP_ATTEMPTS:
                attempts += 1  # a missed needle is a sample: ask again before calling the size broken
                r = h.post("/v1/chat/completions", json={
                    "model": engine.model, "messages": st.messages(), "max_tokens": ANSWER_TOKENS,
                    "chat_template_kwargs": {engine.profile.thinking_variable: False}})
                body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
                content = ((body.get("choices") or [{}])[0].get("message") or {}).get("content") or ""
            ok = r.status_code == 200 and value in content
            detail = (f"HTTP {r.status_code}: {r.text[:160]!r}" if r.status_code != 200 else
                      f"needle {value!r} not in the answer {content[:120]!r} ({attempts} attempts)")
            needles.append({"size": st.size, "prompt_tokens": prompt if prompt is not None else st.tokens,
                            "estimated": st.tokens, "completion_tokens": usage.get("completion_tokens"),
                            "ok": ok, "answer": content[:120], "detail": None if ok else detail,
                            "attempts": attempts, **metered})
        for st in stages if tools else []:
            if st.size < TOOL_FROM * context:
                continue
            meter.start()
            r = h.post("/v1/messages", json={
                "model": engine.model, "max_tokens": TOOL_MAX_TOKENS, "messages": st.messages(TOOL_ASK),
                "tools": [{"name": TOOL["name"], "description": TOOL["description"], "input_schema": TOOL["parameters"]}],
                **meter.fields("messages")})
            body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
            prompt = (body.get("usage") or {}).get("input_tokens")
            metered = meter.read(body, prompt if isinstance(prompt, int) else None)
            problem = _anthropic_tool_call(body) if r.status_code == 200 else f"HTTP {r.status_code}: {r.text[:160]!r}"
            attempts = 1
            while problem is not None and problem.startswith(NO_TOOL_USE) and attempts < SWEEP_ATTEMPTS:
                attempts += 1  # no call at all (e.g. a clarifying question) is a sample; markup or bad input is not
                r = h.post("/v1/messages", json={
                    "model": engine.model, "max_tokens": TOOL_MAX_TOKENS, "messages": st.messages(TOOL_ASK),
                    "tools": [{"name": TOOL["name"], "description": TOOL["description"], "input_schema": TOOL["parameters"]}]})
                body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
                problem = _anthropic_tool_call(body) if r.status_code == 200 else f"HTTP {r.status_code}: {r.text[:160]!r}"
            calls.append({"size": st.size, "prompt_tokens": prompt if isinstance(prompt, int) else st.tokens,
                          "ok": problem is None, "detail": problem if attempts == 1 or problem is None
                          else f"{problem} ({attempts} attempts)", "attempts": attempts,
                          "stop_reason": body.get("stop_reason"), **metered})
    prefill = {"source": meter.source, "window": context, "needle": _chain_cost(needles)}
    if calls:
        prefill["tool"] = _chain_cost(calls)
    computed = [c["computed_tokens"] for c in (prefill["needle"], prefill.get("tool")) if c]
    if all(v is not None for v in computed):
        prefill["computed_tokens"] = sum(computed)
        prefill["computed_over_window"] = round(sum(computed) / context, 3)
    evidence.add(window=context, sizes=[s["prompt_tokens"] for s in needles], needle_value=value,
                 needles=needles, tool_calls=calls, prefill=prefill,
                 context_reached=max((s["prompt_tokens"] for s in needles), default=0))
    message = _from_size(needles, "sweep: needle not retrieved")
    expect(message is None, message or "", "context.sweep_needle_lost", **_onset(needles))
    message = _from_size(calls, "sweep: tool call on /v1/messages broken")
    expect(message is None, message or "", "context.sweep_tool_call_broken", **_onset(calls),
           markup=any("raw tool-call markup" in str(c.get("detail")) for c in calls if not c["ok"]))
