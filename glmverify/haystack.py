"""Needle-in-a-haystack prompts sized with the engine's own tokenizer in a bounded number of calls.

Sizing never re-tokenizes the growing prompt in a loop: one call measures the fixed overhead
(template + question + needles) and two measure a block of filler units (tokens per unit, boundary
effects included), which sizes the prompt by arithmetic. With ``exact=True`` one call measures the
assembled prompt and at most one correction follows; each call is linear in the prompt. With
``exact=False`` only the three small calls are made and the engine's own ``usage.prompt_tokens``
on the real request is the measurement (tokenizing 1M tokens costs tens of seconds on a CPU).

``sweep`` builds a context-length sweep: one haystack per size (``sweep_sizes``: doubling from a
few thousand tokens up to the window minus headroom), each size's text the previous size's text
extended at its end, with one needle at a fixed place near the start. Every prompt therefore
starts with the previous prompt's text, so an engine with a prefix cache computes only the new
part of each and the whole sweep costs about one prompt of the largest size; the question (or
any other tail) comes after the shared text.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

FILLER = ("The grass is green. The sky is blue. The sun is yellow. Here we go. "
          "There and back again. ")
NEEDLE = "The secret passphrase is {value}."
QUESTION = "What is the secret passphrase mentioned in the text above? Reply with the passphrase only."
UNITS_PER_PROBE = 64


@dataclass
class Haystack:
    messages: list[dict]
    tokens: int
    target: int
    needles: list[dict] = field(default_factory=list)
    tokenize_calls: int = 0


def _messages(units: int, needles: list[tuple[float, str]]) -> list[dict]:
    parts = [FILLER] * units
    # insert deepest first so earlier positions stay valid
    for depth, sentence in sorted(needles, key=lambda n: -n[0]):
        parts.insert(min(units, round(depth * units)), sentence + " ")
    return [{"role": "user", "content": "".join(parts) + "\n\n" + QUESTION}]


def build(count: Callable[[list[dict]], int], target_tokens: int,
          needles: list[tuple[float, str]] = (), exact: bool = True, margin: float = 0.004) -> Haystack:
    """A prompt of at most ``target_tokens`` (and within one filler unit of it) with needles at depths.

    ``exact=False`` aims ``margin`` below the target and returns the estimated size.
    """
    needles = list(needles)
    calls = 0
    base = count(_messages(0, needles)); calls += 1
    block = count(_messages(UNITS_PER_PROBE, [])) - count(_messages(0, [])); calls += 2
    per_unit = max(block / UNITS_PER_PROBE, 1e-6)
    aim = target_tokens if exact else math.floor(target_tokens * (1 - margin))
    units = max(0, math.floor((aim - base) / per_unit))
    msgs = _messages(units, needles)
    if not exact:
        return Haystack(messages=msgs, tokens=base + round(units * per_unit), target=target_tokens,
                        needles=[{"depth": d, "sentence": s} for d, s in needles], tokenize_calls=calls)
    total = count(msgs); calls += 1
    if total > target_tokens or target_tokens - total > 2 * per_unit:
        units = max(0, units + math.floor((target_tokens - total) / per_unit))
        msgs = _messages(units, needles)
        total = count(msgs); calls += 1
    while total > target_tokens and units > 0:  # rare: shave whole units, bounded by two passes
        units -= max(1, math.ceil((total - target_tokens) / per_unit))
        msgs = _messages(units, needles)
        total = count(msgs); calls += 1
        if calls > 8:
            break
    return Haystack(messages=msgs, tokens=total, target=target_tokens,
                    needles=[{"depth": d, "sentence": s} for d, s in needles], tokenize_calls=calls)


SWEEP_FIRST = 2048   # the smallest size: a few thousand tokens, below the ~4k where bugs were reported


@dataclass
class SweepStage:
    """One size of a sweep: ``text`` (filler with the needle) is a prefix of the next stage's text."""

    size: int          # the target of prompt plus answer, in tokens
    text: str
    tokens: int        # estimated prompt tokens of ``messages()`` with the needle question
    units: int

    def messages(self, tail: str = QUESTION) -> list[dict]:
        return [{"role": "user", "content": self.text + "\n\n" + tail}]


def sweep_sizes(window: int, headroom: int, first: int = SWEEP_FIRST) -> list[int]:
    """Sizes doubling from ``first`` while below ``window - headroom``, then ``window - headroom``
    (a doubled size within 10% of the last is dropped: it would test the same length twice)."""
    last = window - headroom
    sizes = []
    size = first
    while size < 0.9 * last:
        sizes.append(size)
        size *= 2
    return sizes + [last]


def sweep(count: Callable[[list[dict]], int], sizes: list[int], needle: str, reserve: int = 0) -> list[SweepStage]:
    """One stage per size (prompt of at most ``size - reserve`` tokens), each text extending the
    previous one; ``needle`` sits halfway into the first stage's filler. Three tokenizer calls in
    all (the overhead and a filler block), as ``build`` with ``exact=False``."""
    base = count(_messages(0, [(0.0, needle)]))
    block = count(_messages(UNITS_PER_PROBE, [])) - count(_messages(0, []))
    per_unit = max(block / UNITS_PER_PROBE, 1e-6)
    stages: list[SweepStage] = []
    at = None
    for size in sorted(sizes):
        units = max(1, math.floor((size - reserve - base) / per_unit * (1 - 0.004)))
        if stages and units <= stages[-1].units:
            continue
        at = at if at is not None else units // 2
        parts = [FILLER] * units
        parts.insert(at, needle + " ")
        stages.append(SweepStage(size=size, text="".join(parts), tokens=base + round(units * per_unit), units=units))
    return stages
