"""effort_levels: the row's profile says which requested values lower reasoning effort.

GLM-5.2: Max by default, ``high`` is the only value that lowers it, every other value (``low``,
``medium``, unknown) falls through to Max, and nothing changes with thinking off. The semantics come
from ``engine.profile.effort`` (matrix.yaml), so GLM-5.3's low/high/max is a data change.

Two kinds of check, each through both channels (``chat_template_kwargs.reasoning_effort`` and the
top-level OpenAI ``reasoning_effort``):
* rendered: where the engine exposes the rendered prompt (vLLM ``/tokenize``), the system line
  for omitted and every probe value, and no line with thinking off;
* behaviour, everywhere: over a set of prompts, reasoning tokens at each lowered level are fewer
  than at the default level, and values that fall through reason like the default.
"""
from __future__ import annotations

import statistics

import pytest

from glmverify.checks import expect, no_problems

pytestmark = pytest.mark.feature("effort_levels")

PROMPTS = [
    "How many weekdays are there in a leap year that starts on a Monday?",
    "A train travels 120 km in 1.5 hours. What is its average speed?",
    "Is 221 a prime number?",
    "What is the sum of the interior angles of a hexagon?",
    "Sort these words alphabetically: pear, apple, fig.",
]
MESSAGES = [{"role": "user", "content": "Summarize GLM-5.2 in one sentence."}]


@pytest.fixture(params=["kwargs", "top_level"])
def channel(request) -> str:
    return request.param


def _effort_fields(engine, value, channel, thinking=True) -> dict:
    eff = engine.profile.effort
    kwargs: dict = {}
    body: dict = {}
    if not thinking:
        kwargs[engine.profile.thinking_variable] = False
    if value is not None:
        if channel == "kwargs":
            kwargs[eff.variable] = value
        else:
            body[eff.variable] = value
    if kwargs:
        body["chat_template_kwargs"] = kwargs
    return body


def _rejected(channel: str, status: int | None) -> bool:
    """A top-level value outside the OpenAI enum may be refused with a clean 4xx (vLLM validates
    ``reasoning_effort`` as a literal); that is not a silent change of effort, so it is recorded."""
    return channel == "top_level" and status is not None and 400 <= status < 500


def _rendered_prompt(engine, body: dict) -> str | int:
    """The exact prompt a chat completion ran on (vLLM ``return_token_ids`` → ``/detokenize``).

    ``/tokenize`` would be cheaper but ignores a top-level ``reasoning_effort`` (vLLM 0.32), so it
    cannot show what a chat completion with that field really renders.
    """
    client = engine.client
    with client.http() as h:
        r = h.post("/v1/chat/completions", json={"model": client.model, "messages": MESSAGES, "max_tokens": 1,
                                                 "return_token_ids": True, **body})
        if r.status_code != 200:
            return r.status_code
        ids = r.json().get("prompt_token_ids")
        if not ids:  # older vLLM: fall back to /tokenize (kwargs channel only)
            ids = client.tokenize(messages=MESSAGES, add_generation_prompt=True, **body)["tokens"]
        r = h.post("/detokenize", json={"model": client.model, "tokens": ids})
    expect(r.status_code == 200, f"/detokenize: HTTP {r.status_code}")
    return r.json()["prompt"]


def _has_tokenize(engine) -> bool:
    return engine.client.engine == "vllm"


def test_rendered_system_line(engine, channel, evidence):
    if not _has_tokenize(engine):
        pytest.skip(f"{engine.client.engine} exposes no rendered prompt; behaviour check only")
    eff = engine.profile.effort
    seen = {}
    for value in (None, *eff.probe_values):
        level = eff.resolve(value)
        prompt = _rendered_prompt(engine, _effort_fields(engine, value, channel))
        if isinstance(prompt, int):
            expect(_rejected(channel, prompt), f"{channel} reasoning_effort={value!r}: HTTP {prompt}")
            seen[str(value)] = f"rejected with HTTP {prompt}"
            continue
        want = eff.line_for(level)
        others = [eff.line_for(lv) for lv in eff.levels if lv != level]
        seen[str(value)] = next((ln for ln in prompt.splitlines() if eff.system_line.split("{")[0] in ln), None)
        expect(want in prompt, f"{channel} reasoning_effort={value!r}: expected the line {want!r} "
                               f"(resolves to {level}), rendered prompt starts {prompt[:200]!r}")
        for o in others:
            expect(o not in prompt, f"{channel} reasoning_effort={value!r}: unexpected line {o!r} in the prompt")
    for value in (None, *eff.probe_values):
        prompt = _rendered_prompt(engine, _effort_fields(engine, value, channel, thinking=False))
        if isinstance(prompt, int):
            expect(_rejected(channel, prompt), f"thinking off, {channel} reasoning_effort={value!r}: HTTP {prompt}")
            continue
        for lv in eff.levels:
            expect(eff.line_for(lv) not in prompt,
                   f"thinking off, reasoning_effort={value!r}: effort line {eff.line_for(lv)!r} still rendered")
    evidence.add(channel=channel, rendered_lines=seen)


def _reasoning_tokens(engine, results) -> list[int]:
    counts = []
    for r in results:
        no_problems(r)
        n = r.reasoning_tokens
        if n is None and r.reasoning and engine.client.engine == "vllm":
            n = engine.client.tokenize(prompt=r.reasoning, add_special_tokens=False)["count"]
        if n is None:
            n = len((r.reasoning or "").split())
        counts.append(int(n))
    return counts


def test_behaviour(chat_nonstream, engine, channel, evidence):
    eff = engine.profile.effort
    values = [None, *eff.probe_values]
    reqs = [{"messages": [{"role": "user", "content": p}], **_effort_fields(engine, v, channel)}
            for v in values for p in PROMPTS]
    results = chat_nonstream.many(reqs)
    per_value: dict[str, list[int]] = {}
    rejected = {}
    for i, v in enumerate(values):
        batch = results[i * len(PROMPTS):(i + 1) * len(PROMPTS)]
        if all(_rejected(channel, r.status) for r in batch):
            rejected[str(v)] = batch[0].error
            continue
        per_value[str(v)] = _reasoning_tokens(engine, batch)
    values = [v for v in values if str(v) not in rejected]
    default_counts = per_value["None"]
    base = statistics.mean(default_counts)
    limit = engine.row.expect.get("effort_ratio_max", 0.9)
    ratios = {v: round(statistics.mean(c) / base, 3) if base else None for v, c in per_value.items()}
    by_level: dict[str, list[int]] = {}
    for v in values:
        by_level.setdefault(eff.resolve(v), []).extend(per_value[str(v)])
    evidence.add(channel=channel, n_prompts=len(PROMPTS), reasoning_tokens=per_value, ratio_to_default=ratios,
                 reasoning_tokens_by_level={lv: c for lv, c in by_level.items()},
                 ratio=ratios.get("high"), limit=limit, rejected=rejected)
    expect(base > 0, f"no reasoning at the default effort: {default_counts}")
    for v in values[1:]:
        level = eff.resolve(v)
        r = ratios[str(v)]
        if level == eff.default:
            expect(r >= limit, f"{channel} reasoning_effort={v!r} should fall through to {eff.default} "
                               f"but reasoned {r:.2f}x the default ({per_value[str(v)]} vs {default_counts})")
        else:
            expect(r < limit, f"{channel} reasoning_effort={v!r} ({level}) should reason less than "
                              f"{eff.default}: ratio {r:.2f}, expected < {limit} ({per_value[str(v)]} vs {default_counts})")
