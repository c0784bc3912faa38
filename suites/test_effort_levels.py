"""effort_levels: the row's profile says which requested values lower reasoning effort, and in what order.

GLM-5.2: Max by default, ``high`` is the only value that lowers it, every other value (``low``,
``medium``, unknown) falls through to Max, and nothing changes with thinking off. The semantics come
from ``engine.profile.effort`` (matrix.yaml: levels most effort first, default, fallback), so
GLM-5.3's max/high/low is a data change (tests/live/test_profile_as_data_live.py runs this suite on one).

Two kinds of check, each through both channels (``chat_template_kwargs.reasoning_effort`` and the
top-level OpenAI ``reasoning_effort``):
* rendered: where the engine exposes the rendered prompt (vLLM ``return_token_ids``, SGLang
  ``return_prompt_token_ids``, each then ``/detokenize``), the system line for omitted and every
  probe value, a fall-through value's prompt byte for byte the default's, and no line with
  thinking off;
* behaviour, everywhere: a sequential, paired-by-prompt decision (``glmverify.policy``, the sign
  test on the median reasoning-length ratio) for each
  adjacent pair of levels that the lower one reasons less than the next-higher one (high < max,
  low < high), sampled as the guides send requests; where the rendered prompt is not visible, also
  that values falling through reason like the default. Evidence: ``levels``, ``reasoning_tokens``
  per requested value (``default``: the field omitted), ``ratio`` (the first pair, today's
  lowered-vs-default figure) and ``ratios`` per pair (``"low/high"``).

The behaviour decisions are on reasoning length, never completion tokens (an engine whose High
turns thinking off would otherwise show a tiny ratio and pass): every answer at every level is
sent with thinking on and must carry reasoning (an invariant: one answer without it fails the
check). Requests that time out or fail in transport are excluded from the ratios and judged by
the serving-error bar (``policy.serving_decision``); the request timeout follows the row's
``max_tokens`` and decode floor (``policy.request_timeout``).
"""
from __future__ import annotations

import math

import pytest

from glmverify import gsm8k, policy
from glmverify.checks import conclude, expect, no_problems, words
from glmverify.verdicts import run_sequential

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
    """The exact prompt a chat completion with ``body`` ran on, from the engine's adapter (token ids
    of the prompt, then ``/detokenize``); an int is the HTTP status of a refused request."""
    return engine.adapter.rendered_prompt(engine.client, MESSAGES, body)


def test_rendered_system_line(engine, channel, evidence):
    """Exact, no sampling needed: the rendered prompt of every value carries its level's line, and
    a value that falls through renders the very prompt of the default (byte for byte)."""
    if not policy.rendered_prompt(engine.client.engine):
        pytest.skip(f"{engine.client.engine} exposes no rendered prompt; behaviour check only")
    eff = engine.profile.effort
    seen = {}
    default_prompt = None
    for value in (None, *eff.probe_values):
        level = eff.resolve(value)
        prompt = _rendered_prompt(engine, _effort_fields(engine, value, channel))
        if isinstance(prompt, int):
            expect(_rejected(channel, prompt), f"{channel} reasoning_effort={value!r}: HTTP {prompt}",
                   "effort.request_refused", status=prompt, value=value, channel=channel)
            seen[str(value)] = f"rejected with HTTP {prompt}"
            continue
        if value is None:
            default_prompt = prompt
        elif level == eff.default and default_prompt is not None:
            expect(prompt == default_prompt,
                   f"{channel} reasoning_effort={value!r} falls through to {eff.default} but renders a different prompt "
                   f"than the default: {prompt[:200]!r} vs {default_prompt[:200]!r}",
                   "effort.fall_through_prompt_differs", value=value, channel=channel)
        want = eff.line_for(level)
        others = [eff.line_for(lv) for lv in eff.levels if lv != level]
        seen[str(value)] = next((ln for ln in prompt.splitlines() if eff.system_line.split("{")[0] in ln), None)
        expect(want in prompt, f"{channel} reasoning_effort={value!r}: expected the line {want!r} "
                               f"(resolves to {level}), rendered prompt starts {prompt[:200]!r}",
               "effort.line_missing", value=value, level=level, channel=channel,
               any_line=eff.system_line.split("{")[0] in prompt)
        for o in others:
            expect(o not in prompt, f"{channel} reasoning_effort={value!r}: unexpected line {o!r} in the prompt",
                   "effort.line_wrong", value=value, level=level, line=o, channel=channel)
    for value in (None, *eff.probe_values):
        prompt = _rendered_prompt(engine, _effort_fields(engine, value, channel, thinking=False))
        if isinstance(prompt, int):
            expect(_rejected(channel, prompt), f"thinking off, {channel} reasoning_effort={value!r}: HTTP {prompt}",
                   "effort.request_refused", status=prompt, value=value, channel=channel, thinking=False)
            continue
        for lv in eff.levels:
            expect(eff.line_for(lv) not in prompt,
                   f"thinking off, reasoning_effort={value!r}: effort line {eff.line_for(lv)!r} still rendered",
                   "effort.line_with_thinking_off", value=value, line=eff.line_for(lv))
    evidence.add(channel=channel, rendered_lines=seen)


def reasoning_length(engine, r) -> tuple[int | None, int]:
    """(tokens, words) of one answer's reasoning: tokens from ``usage`` where the engine reports
    them, else the reasoning text through the engine's tokenizer (``count_text_tokens``: vLLM
    ``/tokenize``), else None;
    words always. Never completion tokens: they count the answer too, and an answer without
    reasoning would pass for a short one."""
    n = r.reasoning_tokens
    if n is None and r.reasoning:
        n = engine.adapter.count_text_tokens(engine.client, r.reasoning)
    return (None if n is None else int(n)), words(r.reasoning)


def log_ratio(a: tuple[int | None, int], b: tuple[int | None, int]) -> float:
    """log(a / b) of two reasoning lengths, in tokens when both have them, else in words (one unit per pair)."""
    unit = 0 if a[0] is not None and b[0] is not None else 1
    return math.log(max(a[unit], 1) / max(b[unit], 1))


def _shown(length: tuple | None, units: set) -> int | None:
    """A reasoning length for the evidence: tokens, else words (``units`` collects which); None
    when no sample."""
    if length is None:
        return None
    units.add("tokens" if length[0] is not None else "words")
    return length[0] if length[0] is not None else length[1]


class _Rejected(Exception):
    pass


@pytest.fixture(scope="module")
def effort_prompts(options) -> list[str]:
    """Reasoning prompts (GSM8K questions, a seeded order apart from the accuracy sample's)."""
    items = gsm8k.sample(gsm8k.load(options.gsm8k, options.gsm8k_sha256), max(policy.EFFORT_LOOKS), options.accuracy_seed + 1,
                         shuffle=True)
    return [q["question"] for q in items]


@pytest.mark.behaviour
def test_behaviour(chat_nonstream, engine, channel, evidence, effort_prompts, options):
    """Paired by prompt: for each adjacent pair of the profile's levels (``policy.effort_pairs``,
    e.g. high < max, low < high) each prompt is sent at the higher level and at the lower one; the
    decision is on the median of the per-prompt reasoning-length ratios (sign test, ``policy``).
    The default level is sent as the guides send it: the field omitted. Every answer must reason.

    Each level must reason less than the next-higher one. Where the rendered prompt is not visible
    (an engine whose adapter shows none), every value that falls through must also reason like the
    default (equivalence margin); where it is (vLLM, SGLang), ``test_rendered_system_line`` proves
    fall-through exactly."""
    eff = engine.profile.effort
    chat_nonstream.timeout = policy.request_timeout(engine.row, options)
    rendered = policy.rendered_prompt(engine.client.engine)
    pairs = policy.effort_pairs(eff)
    # (value probed, value it is compared with (None: omitted, the default), rule)
    targets = [(lower, None if higher == eff.default else higher, policy.effort_rule(engine.row, lower, rendered, channel))
               for lower, higher in pairs]
    if not rendered:
        targets += [(v, None, policy.fallthrough_rule(engine.row, v, rendered, channel))
                    for v in eff.probe_values if eff.resolve(v) == eff.default]
    # request key ("default": the field omitted) -> prompt index -> reasoning (tokens, words) (None:
    # truncated or not served); a level's draws are reused as the reference of the next pair
    drawn: dict[str, dict[int, tuple | None]] = {"default": {}}
    tokens: dict[str, list] = {"default": []}
    rejected: dict[str, str] = {}
    decisions = []
    served_errors: list[str] = []
    units: set[str] = set()
    sent = 0

    def length(r, value, i) -> tuple | None:
        """The answer's reasoning length; None when it is no sample (not served, truncated)."""
        if policy.serving_error(r):
            served_errors.append(f"reasoning_effort={value!r}, prompt {i}: {r.error}")
            return None
        no_problems(r, f"{channel} reasoning_effort={value!r}, prompt {i}")
        # thinking is on at every level: an answer without reasoning breaks the promise, whatever its length
        expect(bool(r.reasoning and r.reasoning.strip()),
               f"{channel} reasoning_effort={value!r}, prompt {i}: no reasoning with thinking on "
               f"(content {r.content!r:.160}); every effort level must still reason",
               "effort.no_reasoning", value=value, channel=channel)
        return None if r.truncated else reasoning_length(engine, r)

    def key(value: str | None) -> str:
        return "default" if value is None else value

    for value, reference, rule in targets:
        pos = 0
        tokens.setdefault(value, [])
        tokens.setdefault(key(reference), [])
        ref = drawn.setdefault(key(reference), {})
        if key(reference) in rejected:
            rejected[value] = f"not compared: its reference {reference!r} was rejected"
            continue

        def draw(k: int, value=value, reference=reference, ref=ref):
            nonlocal pos, sent
            idx = list(range(pos, min(pos + k, len(effort_prompts))))
            pos += k
            need = [i for i in idx if i not in ref]
            reqs = [{"messages": [{"role": "user", "content": effort_prompts[i]}],
                     **_effort_fields(engine, reference, channel)} for i in need]
            reqs += [{"messages": [{"role": "user", "content": effort_prompts[i]}], **_effort_fields(engine, value, channel)}
                     for i in idx]
            results = chat_nonstream.many(reqs)
            sent += len(results)
            base, probed = results[:len(need)], results[len(need):]
            if probed and all(_rejected(channel, r.status) for r in probed):
                raise _Rejected(probed[0].error)
            for i, r in zip(need, base):
                ref[i] = length(r, reference, i)
                tokens[key(reference)].append(_shown(ref[i], units))
            samples = []
            for i, r in zip(idx, probed):
                t = length(r, value, i)
                tokens[value].append(_shown(t, units))
                drawn.setdefault(value, {}).setdefault(i, t)
                if t is None or ref[i] is None:
                    continue  # cut by max_tokens or not served: excluded from the ratio, counted in the decision
                samples.append(log_ratio(t, ref[i]))
            return samples, len(need) + len(idx)

        try:
            decision, _ = run_sequential(rule, draw)
        except _Rejected as exc:
            rejected[value] = str(exc)
            continue
        decisions.append(decision)
    fell = [d for d in decisions if "=" in d.rule]  # effort[CHANNEL:VALUE=DEFAULT]: a fall-through decision
    evidence.add(observed={f"effort fall-through ({channel})": (
        "decided by behaviour (no rendered prompt): " + ", ".join(f"{d.rule.split(':')[-1].split('=')[0]} "
                                                                  f"{d.estimate:.2f}x default" for d in fell if d.estimate)
        if not rendered else "exact: every fall-through value renders the default's prompt")})
    by_rule = {d.rule: d for d in decisions}
    ratios = {f"{lower}/{higher}": by_rule[f"effort[{channel}:{lower}]"].estimate
              for lower, higher in pairs if f"effort[{channel}:{lower}]" in by_rule}
    evidence.add(channel=channel, levels=list(eff.levels), reasoning_tokens={k: v[:64] for k, v in tokens.items()},
                 reasoning_length_unit=" and ".join(sorted(units)) or None, requests=sent,
                 rejected=rejected, tokens_spent=chat_nonstream.tokens_spent,
                 ratio=ratios.get(f"{pairs[0][0]}/{pairs[0][1]}") if pairs else None,
                 ratios=ratios, example=chat_nonstream.log[0] if chat_nonstream.log else None)
    for lower, _ in pairs:
        expect(lower not in rejected, f"{channel} reasoning_effort={lower!r} was rejected: {rejected.get(lower)}",
               "effort.value_rejected", value=lower, channel=channel)
    serving = policy.serving_decision(f"effort_levels[{channel}]", sent, served_errors)
    # a fall-through decision (effort[CHANNEL:VALUE=DEFAULT]) or a level against the next higher one
    conclude(*decisions, serving, evidence=evidence, context=f"{channel} channel",
             code=lambda d: "effort.fall_through_differs" if "=" in d.rule else "effort.level_not_lower")
