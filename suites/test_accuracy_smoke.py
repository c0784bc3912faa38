"""accuracy_smoke: GSM8K through chat completions, decided sequentially with stated error rates.

Questions come in a seeded order of the whole test set (the same for every row, so rows compare).
The answer is taken from ``content`` only (never from reasoning): an engine that leaves the answer
in the reasoning field scores it as invalid. Requests are sent as the guides send them (no
sampling fields; the profile's max_tokens), so a healthy sampling deployment still misses a few.

The decision (``policy.accuracy_rule``): verified once the accuracy is confidently at or above the
mode's bar (expected - tolerance, from the profile, thinking on and off apart), failed once it is
confidently below it; otherwise more questions are drawn (doubling from ``--accuracy-samples`` up
to ``--accuracy-max``, default the whole 1,319) and the cell ends inconclusive. Requests cut by
max_tokens, refused (4xx) or with protocol defects count as wrong and are reported apart;
requests the server did not serve (timeouts, transport errors, 5xx) are no answer to score: they
are excluded and judged by the serving-error bar (``policy.serving_decision``). The request
timeout follows the row's ``max_tokens`` and decode floor (``policy.request_timeout``).

Speculative decoding: GSM8K can collapse with MTP on while short answers look fine (vLLM #46834,
SGLang #28685: 1% with MTP against 96% without). So a row that claims MTP is decided WITH
speculative decoding on, against the model's non-speculative accuracy (the profile's bar: MTP
must not cost accuracy); the engine must be seen speculating (its observed configuration: vLLM's
``vllm:spec_decode_*`` counters, SGLang's ``speculative_algorithm``), else the check fails rather
than score a non-speculative run for a speculative row. The evidence and the failure message name
whether speculative decoding was on.
"""
from __future__ import annotations

import pytest

from glmverify import gsm8k, policy
from glmverify.checks import Inconclusive, conclude, expect
from glmverify.verdicts import run_sequential

pytestmark = pytest.mark.feature("accuracy_smoke")

INSTRUCTION = "Solve the problem. End your answer with 'The answer is N.' where N is the final number."


@pytest.fixture(scope="module")
def questions(options):
    return gsm8k.sample(gsm8k.load(options.gsm8k, options.gsm8k_sha256), 0, options.accuracy_seed, shuffle=True)


def speculation(engine) -> dict:
    """Whether the row claims MTP and whether the engine was seen speculating (None: not reported;
    ``unobserved``: why it could not be seen on this endpoint, e.g. /metrics behind a gateway)."""
    obs = (engine.evidence or {}).get("observed") or {}
    seen = obs.get("speculative")
    if seen is None and isinstance(obs.get("server_args"), dict):
        seen = bool(obs["server_args"].get("speculative_algorithm"))
    why = (obs.get("unobserved") or {}).get("speculative decoding")
    return {"claimed": bool(engine.row.expect.get("draft_tokens")), "observed": seen,
            **({"unobserved": why} if why else {})}


@pytest.mark.behaviour
@pytest.mark.parametrize("thinking", [True, False], ids=["think", "nonthink"])
def test_gsm8k(engine, chat_nonstream, questions, thinking, evidence, options):
    spec = speculation(engine)
    evidence.add(speculative_decoding=spec)
    expect(not (spec["claimed"] and spec["observed"] is False),
           f"row {engine.row.id} claims MTP but the engine runs without speculative decoding: its accuracy "
        f"must be decided with speculative decoding on")
    if spec["claimed"] and spec["observed"] is None:
        # never decided on the claim: a speculative row's accuracy needs speculation seen on
        raise Inconclusive(f"INCONCLUSIVE: row {engine.row.id} claims MTP, but whether the engine speculates "
                           f"is unobserved ({spec.get('unobserved') or 'the server reports no speculative setting'}); "
                           "give --metrics-url (vLLM) or expose /server_info (SGLang) to decide its accuracy")
    on = bool(spec["observed"])
    chat_nonstream.timeout = policy.request_timeout(engine.row, options)
    rendered = policy.rendered_prompt(engine.client.engine)
    rule = policy.accuracy_rule(engine.row, thinking, rendered, options.accuracy_samples or len(questions),
                                options.accuracy_max or len(questions))
    extra = {} if thinking else {"chat_template_kwargs": {engine.profile.thinking_variable: False}}
    tally = {"correct": 0, "wrong": 0, "invalid": 0, "truncated": 0, "request_errors": 0}
    wrong, errors, truncated, unserved = [], [], [], []
    asked: list[str] = []

    def draw(k: int):
        batch = questions[len(asked):len(asked) + k]
        asked.extend(q["id"] for q in batch)
        results = chat_nonstream.many(
            {"messages": [{"role": "user", "content": f"{q['question']}\n\n{INSTRUCTION}"}], **extra} for q in batch)
        outcomes = []
        for q, r in zip(batch, results):
            if policy.serving_error(r):
                unserved.append(f"{q['id']}: {r.error}")  # excluded: no answer to score
            elif r.error or r.problems:
                tally["request_errors"] += 1
                errors.append({"id": q["id"], "error": r.error or r.problems[:2]})
                outcomes.append(False)
            elif r.truncated:
                tally["truncated"] += 1
                truncated.append({"id": q["id"], "completion_tokens": r.completion_tokens})
                outcomes.append(False)
            else:
                got = gsm8k.extract(r.content)
                ok = got == q["answer"]
                tally["correct" if ok else ("wrong" if got is not None else "invalid")] += 1
                if not ok:
                    wrong.append({"id": q["id"], "expected": q["answer"], "got": got})
                outcomes.append(ok)
        return outcomes, len(batch)

    decision, outcomes = run_sequential(rule, draw)
    serving = policy.serving_decision(f"accuracy_smoke[{'think' if thinking else 'nonthink'}]", len(asked), unserved)
    evidence.add(speculative_decoding={**spec, "on": on, "bar": "the profile's (non-speculative) accuracy"},
                 thinking=thinking, n=decision.n, accuracy=decision.estimate, bar=rule.verify_bound,
                 **tally, first_wrong=wrong[:10], first_errors=errors[:3], first_truncated=truncated[:3],
                 seed=options.accuracy_seed, sample_ids=asked[:20],
                 max_tokens=engine.profile.max_tokens, tokens_spent=chat_nonstream.tokens_spent, example=chat_nonstream.log[0] if chat_nonstream.log else None)
    conclude(decision, serving, evidence=evidence,
             context=(f"thinking {'on' if thinking else 'off'}, speculative decoding {'on' if on else 'off'}: "
                      f"GSM8K {tally['correct']}/{decision.n} correct, "
                      f"{tally['wrong']} wrong, {tally['invalid']} without an answer in content, "
                      f"{tally['truncated']} cut by max_tokens, {tally['request_errors']} failed requests, "
                      f"{len(unserved)} not served (excluded)"
                      + (f" (first: {errors[:2]})" if errors else "") + (f"; first wrong: {wrong[:3]}" if wrong else "")))
