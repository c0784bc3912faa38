"""accuracy_smoke: GSM8K through chat completions, scored by the Wilson lower bound.

The sample (size and seed are options) is the same for every row so rows compare. The answer is
taken from ``content`` only (never from reasoning): an engine that leaves the answer in the
reasoning field scores it as invalid. A cell verifies when the 95% Wilson lower bound of the
accuracy reaches the row's threshold; the invalid-answer rate is reported.
"""
from __future__ import annotations

import pytest

from glmverify import gsm8k
from glmverify.checks import expect

pytestmark = pytest.mark.feature("accuracy_smoke")

INSTRUCTION = "Solve the problem. End your answer with 'The answer is N.' where N is the final number."


@pytest.fixture(scope="module")
def sample(options):
    return gsm8k.sample(gsm8k.load(options.gsm8k, options.gsm8k_sha256), options.accuracy_samples, options.accuracy_seed)


@pytest.mark.parametrize("thinking", [True, False], ids=["think", "nonthink"])
def test_gsm8k(engine, chat_nonstream, sample, thinking, evidence):
    threshold = engine.row.expect.get("accuracy")
    expect(threshold is not None, f"row {engine.row.id} declares no accuracy threshold")
    extra = {} if thinking else {"chat_template_kwargs": {engine.profile.thinking_variable: False}}
    results = chat_nonstream.many(
        {"messages": [{"role": "user", "content": f"{q['question']}\n\n{INSTRUCTION}"}],
         "max_tokens": 4096, **extra} for q in sample)
    score = gsm8k.score(sample, [r.content for r in results])
    errors = [{"id": q["id"], "error": r.error} for q, r in zip(sample, results) if r.error]
    wrong = [{"id": w["id"], "expected": w["expected"], "got": w["got"]} for w in score["items"] if not w["correct"]][:10]
    evidence.add(thinking=thinking, n=score["n"], correct=score["correct"], accuracy=score["accuracy"],
                 wilson_lower=score["wilson_lower"], invalid_rate=score["invalid_rate"], threshold=threshold,
                 request_errors=len(errors), first_errors=errors[:3], seed=sample.seed, sample_ids=[q["id"] for q in sample][:20], wrong=wrong,
                 example=chat_nonstream.log[0])
    expect(score["wilson_lower"] >= threshold,
           f"GSM8K accuracy {score['accuracy']:.3f} on {score['n']} (Wilson 95% lower bound "
           f"{score['wilson_lower']:.3f}) below the threshold {threshold}; invalid answers {score['invalid_rate']:.1%} "
           f"({len(errors)} failed requests, first: {errors[:2]}); "
           f"first wrong: {wrong[:3]}")
