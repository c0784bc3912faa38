"""The statistical decisions each row makes, built from its profile and expectations.

One function per decision (the suites call them; none computes a bound itself). Targets come from
the model profile's ``verdicts`` block in matrix.yaml (GSM8K expected accuracy and tolerance per
mode with their basis, the conforming ratio of an effort level's reasoning to the next-higher
level's, the thinking-off token ratio) and from the
row's ``expect`` (MTP minimum accept length, an accuracy bar override). The false-failure rate is
chosen for the sign-off: ``family_alpha`` (1%) per row and run, split evenly over the decisions in
``family(row, rendered)``, so a conforming row false-fails anywhere with probability <= 1%.

Looks (group-sequential sample sizes) are chosen so that a conforming engine decides at the first
look and a broken one at the effect still fails with power >= 95% within the budget; the
simulations in tests/unit/test_verdicts.py show both.
"""
from __future__ import annotations

from .adapters import adapter_for
from .matrix import EffortProfile, Row
from .verdicts import FAMILY_ALPHA, Rule, per_decision_alpha

GSM8K_SIZE = 1319
EFFORT_LOOKS = (8, 16, 32, 64, 128)       # prompts, each sent at both levels (paired)
NONTHINK_LOOKS = (8, 16, 32, 64)          # prompts, each sent with thinking off and on
WRONG_VARIABLE_LOOKS = (6, 12, 24, 48)    # prompts, each sent with the wrong variable and on
MTP_LOOKS = (4, 8, 16)                    # windows of the workload (counter deltas per window)
MTP_WINDOW = 4                            # requests per window
DEFAULT_EFFORT_RATIO = 0.8
DEFAULT_NONTHINK_RATIO = 0.5


def _v(row: Row) -> dict:
    return row.profile.verdicts or {}


def rendered_prompt(engine_kind: str) -> bool:
    """Whether the engine shows the prompt its template rendered (its adapter's answer)."""
    return adapter_for(engine_kind).shows_rendered_prompt


def family(row: Row, rendered: bool) -> list[str]:
    """Every statistical decision the row's suites make in one run (the Bonferroni family)."""
    out: list[str] = []
    eff = row.profile.effort
    if row.serves("accuracy_smoke") and row.expect.get("accuracy") is not None:
        out += ["accuracy[think]", "accuracy[nonthink]"]
    if row.serves("effort_levels"):
        for ch in ("kwargs", "top_level"):
            out += [f"effort[{ch}:{lower}]" for lower, _ in effort_pairs(eff)]
            if not rendered:
                out += [f"effort[{ch}:{v}={eff.default}]" for v in eff.probe_values if eff.resolve(v) == eff.default]
    if row.serves("non_think"):
        out.append("non_think[ratio]")
        out += [f"non_think[wrong:{v}]" for v in row.profile.wrong_thinking_variables]
    if row.serves("mtp_accept_length") and row.expect.get("min_accept_length") is not None:
        out.append("mtp[accept_length]")
    return out


def alpha(row: Row, rendered: bool) -> float:
    return per_decision_alpha(len(family(row, rendered)), _v(row).get("family_alpha", FAMILY_ALPHA))


def accuracy_looks(first: int, budget: int) -> tuple[int, ...]:
    """``first``, doubling, then the budget (0 = the whole test set)."""
    budget = GSM8K_SIZE if budget <= 0 else min(budget, GSM8K_SIZE)
    first = max(2, min(first, budget))
    looks = [first]
    while looks[-1] * 2 < budget:
        looks.append(looks[-1] * 2)
    if looks[-1] != budget:
        looks.append(budget)
    return tuple(looks)


def accuracy_target(row: Row, thinking: bool) -> dict:
    mode = "think" if thinking else "nonthink"
    t = dict((_v(row).get("accuracy") or {}).get(mode) or {})
    if not t:
        t = {"expected": 0.95, "tolerance": 0.05, "effect": 0.80, "basis": "harness default (profile has no target)"}
    t["bar"] = round(t["expected"] - t["tolerance"], 4)
    if thinking and row.expect.get("accuracy") is not None and row.expect["accuracy"] != t["bar"]:
        t["bar"] = row.expect["accuracy"]
        t["basis"] = f"row {row.id} expect.accuracy {row.expect['accuracy']} (overrides the profile's bar)"
    return t


def accuracy_rule(row: Row, thinking: bool, rendered: bool, first: int, budget: int) -> Rule:
    t = accuracy_target(row, thinking)
    return Rule(
        name=f"accuracy[{'think' if thinking else 'nonthink'}]",
        quantity=f"GSM8K accuracy (thinking {'on' if thinking else 'off'})", kind="proportion",
        higher_is_better=True, verify_bound=t["bar"], fail_bound=t["bar"], alpha=alpha(row, rendered),
        effect=t["effect"], looks=accuracy_looks(first, budget),
        basis=f"bar {t['bar']} = expected {t['expected']} - tolerance {t['tolerance']}: {t['basis']}")


def effort_pairs(eff: EffortProfile) -> list[tuple[str, str]]:
    """``(level, next-higher level)`` for each adjacent pair of the profile's levels (most effort
    first): each level must reason less than the one above it (GLM-5.2: high < max; GLM-5.3 also
    low < high)."""
    levels = list(eff.levels)
    return [(levels[i], levels[i - 1]) for i in range(1, len(levels))]


def _effort_conforming(row: Row) -> float:
    """A conforming deployment's level/next-higher-level reasoning ratio is at most this (row, else profile)."""
    return row.expect.get("effort_ratio_max", _v(row).get("effort_conforming_ratio", DEFAULT_EFFORT_RATIO))


def effort_rule(row: Row, level: str, rendered: bool, channel: str) -> Rule:
    """``level`` reasons less than the next-higher level of the profile (``effort_pairs``)."""
    higher = dict(effort_pairs(row.profile.effort))[level]
    conforming = _effort_conforming(row)
    return Rule(
        name=f"effort[{channel}:{level}]",
        quantity=f"{level}/{higher} reasoning-token ratio (geometric mean over prompts)", kind="mean",
        higher_is_better=False, verify_bound=1.0, fail_bound=conforming, alpha=alpha(row, rendered),
        effect=1.0, looks=EFFORT_LOOKS, log_scale=True,
        basis=(f"the guides: {level} lowers effort below {higher}; a conforming deployment reasons at most "
               f"{conforming}x as long (profile), effort ignored (1.0x) must fail"))


def fallthrough_rule(row: Row, value: str, rendered: bool, channel: str) -> Rule:
    """Engines without a rendered prompt: a value that falls through reasons like the default."""
    eff = row.profile.effort
    conforming = _effort_conforming(row)
    return Rule(
        name=f"effort[{channel}:{value}={eff.default}]",
        quantity=f"reasoning_effort={value!r} / default reasoning-token ratio", kind="mean",
        higher_is_better=True, verify_bound=conforming, fail_bound=1.0, alpha=alpha(row, rendered),
        effect=conforming, looks=EFFORT_LOOKS, log_scale=True,
        basis=(f"the guides: {value!r} falls through to {eff.default}; equivalence margin: it must not reason "
               f"as little as a lowered level ({conforming}x)"))


def nonthink_rule(row: Row, rendered: bool) -> Rule:
    bar = _v(row).get("nonthink_ratio", DEFAULT_NONTHINK_RATIO)
    return Rule(
        name="non_think[ratio]", quantity="thinking-off/on completion-token ratio (geometric mean over prompts)",
        kind="mean", higher_is_better=False, verify_bound=bar, fail_bound=bar, alpha=alpha(row, rendered),
        effect=1.0, looks=NONTHINK_LOOKS, log_scale=True,
        basis=f"enable_thinking: false turns reasoning off: under {bar}x the tokens of thinking on (profile)")


def wrong_variable_rule(row: Row, variable: str, rendered: bool) -> Rule:
    bar = _v(row).get("nonthink_ratio", DEFAULT_NONTHINK_RATIO)
    return Rule(
        name=f"non_think[wrong:{variable}]",
        quantity=f"{variable}=false / thinking-on completion-token ratio (geometric mean over prompts)",
        kind="mean", higher_is_better=True, verify_bound=bar, fail_bound=bar, alpha=alpha(row, rendered),
        effect=0.2, looks=WRONG_VARIABLE_LOOKS, log_scale=True,
        basis=(f"{variable!r} is not the switch ({row.profile.thinking_variable} is): the model keeps thinking, "
               f"i.e. at least {bar}x the tokens of thinking on"))


def mtp_rule(row: Row, rendered: bool) -> Rule:
    minimum = float(row.expect["min_accept_length"])
    return Rule(
        name="mtp[accept_length]", quantity="mean accept length per window (1 + accepted/drafts)", kind="mean",
        higher_is_better=True, verify_bound=minimum, fail_bound=minimum, alpha=alpha(row, rendered),
        effect=round(minimum - 0.5, 3), looks=MTP_LOOKS,
        basis=f"row {row.id} expect.min_accept_length {minimum} (guides: cookbook 3.5 for EAGLE 5-1-6, >90% for one token)")


def rules(row: Row, rendered: bool, accuracy_first: int = 64, accuracy_budget: int = 0) -> list[Rule]:
    """Every rule of ``family(row, rendered)``, in the same order (for ``glmverify rules``)."""
    eff = row.profile.effort
    out: list[Rule] = []
    for name in family(row, rendered):
        kind, _, arg = name.partition("[")
        arg = arg.rstrip("]")
        if kind == "accuracy":
            out.append(accuracy_rule(row, arg == "think", rendered, accuracy_first, accuracy_budget))
        elif kind == "effort":
            channel, _, what = arg.partition(":")
            if what.endswith(f"={eff.default}"):
                out.append(fallthrough_rule(row, what.split("=")[0], rendered, channel))
            else:
                out.append(effort_rule(row, what, rendered, channel))
        elif name == "non_think[ratio]":
            out.append(nonthink_rule(row, rendered))
        elif kind == "non_think":
            out.append(wrong_variable_rule(row, arg.partition(":")[2], rendered))
        elif kind == "mtp":
            out.append(mtp_rule(row, rendered))
    return out
