"""The stand-in's reasoning: a few sentences about the request, as long as the effort level asks.

Every answer kind supplies *units*, the sentences its reasoning is built from (``base_units`` for
free text: 2-3 deterministic sentences about the focus text; the GSM8K rationale steps; the
needle's search steps). ``reasoning`` turns them into the reasoning of the effort level at a rank
of the profile (0 = most effort, also when the prompt has no effort line):

* scripted: rank 0 gives each unit followed by two checking sentences (about 3x the tokens);
  rank 1 the units alone (GLM-5.2: Max is about 3x High); lower ranks the first share
  ``sampling.effort_scale(rank)`` of the units (``sampling.units_at``), each rank shorter again;
* sampled: ``sampling.reasoning_sentences``, a drawn length around the same ordering.
"""
from __future__ import annotations

import random

from .prompt import lc_first, seed_of, words
from .sampling import Sampling, is_sampled, reasoning_sentences, units_at

#: The checking sentences that stretch the most-effort reasoning (scripted): per unit.
CHECKS_PER_UNIT = 2


def base_units(focus: str, kind: str) -> list[str]:
    """k (2-3) deterministic sentences about ``focus`` (short: CPU decoding time is the CI budget)."""
    rng = random.Random(seed_of(kind, focus))
    ws = words(focus) or ["the request"]
    topic = " ".join(ws[:6])
    k = 2 + rng.randrange(2)
    pool = [
        "I need to think about {w} here.",
        "The key detail seems to be {w}.",
        "Considering {w} and {w2} together should help.",
        "There is no need for extra assumptions about {w}.",
        "I want the reply to address {w} directly.",
        "It helps to separate {w} from {w2} first.",
        "Nothing in the request about {w} is ambiguous.",
    ]
    units = [f"The user is asking about {topic}."]
    while len(units) < k:
        tpl = pool[rng.randrange(len(pool))]
        units.append(tpl.format(w=ws[rng.randrange(len(ws))], w2=ws[rng.randrange(len(ws))]))
    return units


def expand(units: list[str], rank: int, focus: str) -> list[str]:
    """Scripted sentences at ``rank``: rank 0 each unit plus its checks, lower ranks ``units_at``."""
    if rank > 0:
        return units_at(units, rank)
    ws = words(focus) or ["the question"]
    out = []
    for i, u in enumerate(units):
        out.append(u)
        out.append(f"Double-check: {lc_first(u)}")
        out.append(f"Confirmed for {ws[i % len(ws)]}, moving on.")
    return out


def reasoning(units: list[str], focus: str, rank: int, sampling: Sampling | None) -> list[str]:
    """The reasoning sentences at ``rank``: scripted, or (sampled) of a drawn length."""
    if is_sampled(sampling):
        assert sampling is not None and sampling.rng is not None
        return reasoning_sentences(units, words(focus), rank=rank, key=focus, rng=sampling.rng)
    return expand(units, rank, focus)
