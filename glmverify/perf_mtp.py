"""serving_performance's MTP speed-up decision (issue 24, 4.4): speculation must not be slower.

Seed 000 says MTP's 5 draft tokens lift end-to-end throughput; vLLM #55605 measured MTP 29-41%
*slower* than no MTP on repetitive text. Where a row speculates (``expect.draft_tokens``) and has
a no-speculation twin on the same hardware (``twin_of``: same hardware, accelerator count,
engine, image and model, no draft tokens, both measured at concurrency 1), its E2E latency at
concurrency 1 on a natural workload is held to the twin's:

* the twin differs from the row in speculation alone: its launch arguments are the row's without
  the ``--speculative*`` flags (a low-latency row against a high-throughput one differs in
  parallelism too, and is no twin);
* the samples are per-window log ratios, ``log(spec_i / twin_i)``, the i-th window of each row
  (``speedup_samples``). The windows are independent draws of two independent launches, so the
  pairing by index is arbitrary but harmless: the difference of two independent draws has the
  variance of both, which the t interval sees (it costs efficiency, never the error rates);
* the rule (``speedup_rule``) is a ``verdicts.Rule`` of kind mean on log scale with one bar at
  1.0: **failed** when speculation is confidently slower than its twin (a conforming row, at
  most as slow, fails with P <= alpha), **verified** when confidently faster, ``inconclusive``
  when the windows cannot tell (a break-even speculation); power is stated at ``EFFECT`` (a
  speculation costing 25% more than it saves fails with P >= 1 - beta at the stated window noise,
  ``tests/unit/test_perf_mtp.py``).

E2E latency at concurrency 1 is the single user's wait for a whole answer, the quantity MTP is
deployed to lower (TPOT would hide a slower first token; throughput at concurrency 1 is its
reciprocal up to the fixed output length).

Not wired into the live suite yet: the measurement has no natural workload (its windows are
random tokens, under which the seed warns MTP's gain is under-reported), and the CPU reference
cannot carry it (its speculating row, reference-ngram, serves the stand-in's random weights
without the stand-in's logits processor, which vLLM refuses with speculation: its drafts are
rejected, so a conforming launch would itself be slower than its twin). Pure: no I/O.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

from .matrix import Row
from .verdicts import Decision, Rule, decide

EFFECT = 1.25                      # spec / twin E2E latency the rule must fail (vLLM #55605: 1.29-1.41)
LOOKS = (3, 6, 10)                 # windows per row, as the regression decision's
CONCURRENCY = 1
QUANTITY = "E2E latency with speculation / without (its twin) at concurrency 1"


def speculates(row: Row) -> bool:
    return bool(row.expect.get("draft_tokens"))


def launch_flags(args: Sequence[str], drop: str = "--speculative") -> list[tuple[str, ...]]:
    """Launch arguments as sorted groups (a flag with its values; leading positionals), the flags
    starting with ``drop`` left out: two launches with equal groups differ only in those."""
    groups: list[list[str]] = [[]]
    for a in args:
        if a.startswith("--"):
            groups.append([a])
        else:
            groups[-1].append(a)
    return sorted(tuple(g) for g in groups if g and not g[0].startswith(drop))


def twin_of(row: Row, rows: Iterable[Row]) -> Row | None:
    """The row's no-speculation twin on the same hardware, or None (also for a row that does not speculate)."""
    if not speculates(row):
        return None
    mine = launch_flags(row.launch.args)
    for other in rows:
        if other.id != row.id and not speculates(other) and all(
                getattr(other, k) == getattr(row, k) for k in ("hardware", "accelerators", "engine", "image", "model")) \
                and launch_flags(other.launch.args) == mine:
            return other
    return None


def speedup_rule(alpha: float, looks: tuple[int, ...] = LOOKS, basis: str = "") -> Rule:
    return Rule(name=f"perf[mtp_speedup:c{CONCURRENCY}]", quantity=QUANTITY, kind="mean", higher_is_better=False,
                verify_bound=1.0, fail_bound=1.0, alpha=alpha, looks=looks, effect=EFFECT, log_scale=True,
                basis=basis or "seed 000: MTP lifts end-to-end throughput; it must at least not slow a single user")


def speedup_samples(spec_e2el_ms: Sequence[float], twin_e2el_ms: Sequence[float]) -> list[float]:
    """log(spec_i / twin_i) over the windows both rows have (a window that measured nothing is dropped)."""
    return [math.log(s / t) for s, t in zip(spec_e2el_ms, twin_e2el_ms) if s > 0 and t > 0]


def decide_speedup(spec_e2el_ms: Sequence[float], twin_e2el_ms: Sequence[float], alpha: float,
                   looks: tuple[int, ...] = LOOKS, basis: str = "") -> Decision:
    """The decision on the windows measured so far (the last look they reach)."""
    return decide(speedup_rule(alpha, looks, basis), speedup_samples(spec_e2el_ms, twin_e2el_ms))
