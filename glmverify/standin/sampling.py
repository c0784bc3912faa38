"""How the stand-in varies its output like a sampling model (the script's sampling half).

GLM-5.2 samples (its generation config ships temperature 1.0, top_p 0.95), so a deployment answers
the same prompt differently each time. The processor picks a ``Sampling`` per request and passes
it to ``script.respond`` / ``script.generate``; this module holds the draws. No vLLM import, and
no import of ``script`` (which imports this module).

* ``None`` (``GLM_STANDIN_SAMPLING=off``): scripted, the exact output whatever the temperature.
* sampled (``Sampling(rng)``, a request with temperature > 0), every draw from ``rng``:

  - reasoning: the scripted sentences (units) interleaved with checking sentences until a target
    length of ``len(units) x effort scale x prompt factor x lognormal(0, LENGTH_SIGMA)``. The
    prompt factor (in ``PROMPT_FACTOR_RANGE``) is a hash of the prompt's focus text, the lognormal
    factor is drawn per request. The effort scale comes from the level's rank in the profile
    (``effort_scale``: ``TOP_SCALE`` for the most effort, and no effort line; divided by
    ``RANK_STEP`` per lower level): GLM-5.2's Max reasons about twice as long as High on average
    and the two distributions overlap. Levels whose scale is under 1 (GLM-5.3's Low, two ranks
    down) reason over the first share ``effort_scale`` of the units only (``units_at``).
  - GSM8K: the answer is off by one with probability ``P_WRONG_THINK`` (thinking on) or
    ``P_WRONG_NONTHINK`` (thinking off): a healthy deployment still gets a few questions wrong.
    Fault ``low_accuracy``: ``P_WRONG_LOW_ACCURACY`` (about 80% accuracy).
  - plain short answers may end with one closing sentence (answer length varies a little).
  - tool calls (``tool_style``), within what a healthy model does; the arguments never change:

    * parallel calls come in another order than the user named them with ``P_PARALLEL_REORDER``
      (25%, the share measured on a healthy GLM-5.2 deployment): order is behaviour, not a defect;
    * the one-line sentence before the call ("I'll call NAME for this.") is written with
      ``P_PREAMBLE`` (70%), else the answer is the call alone. Under ``tool_choice: none`` (vLLM
      drops the calls) an answer without the sentence has no content, only reasoning: a
      conforming engine still;
    * a lone call under ``auto`` becomes a clarifying question instead (no call) with
      ``P_CLARIFY`` (2%, as measured); never when a grammar forces the call (``tool_choice``
      required or a named function), which also never writes the sentence;
    * the whitespace nobody asked to keep varies: the sentence ends in one newline, two, or a
      space (``PREAMBLE_ENDS``, equally likely). The arguments, their strings' whitespace
      included, never vary. Under fault ``script_canary`` the sentence (which carries the canary)
      is always written.

  - JSON output, needle answers, tool-result answers: unchanged.

* greedy (``Sampling(greedy=True)``, temperature 0): deterministic, the scripted output, except
  that for ``GREEDY_LOOP_PERCENT`` % of thinking-on prompts (by a hash of the prompt) the reasoning
  falls into a repetition loop, as real reasoning models do under greedy decoding: after a prefix
  of the reasoning its last sentence repeats without end and ``</think>`` never comes (the
  processor repeats it until ``max_tokens``: finish_reason "length"). Fault ``low_accuracy`` in
  scripted and greedy mode: every ``LOW_ACCURACY_EVERY``-th question (by a hash) is answered wrong.

Processor side: ``SAMPLING_ENV`` (``on``, the default, or ``off``), ``SEED_ENV`` (the engine
seed; random and logged when unset), ``request_rng`` for requests that carry a seed.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from collections.abc import Iterable
from dataclasses import dataclass

#: ``on`` (default): sampled or greedy by the request's temperature; ``off``: scripted exact output.
SAMPLING_ENV = "GLM_STANDIN_SAMPLING"
#: The engine seed (an integer) that unseeded requests draw from; random when unset.
SEED_ENV = "GLM_STANDIN_SEED"

#: GSM8K wrong-answer probability per sampled request, thinking on / off.
P_WRONG_THINK = 0.03
P_WRONG_NONTHINK = 0.06
#: Fault ``low_accuracy``: wrong-answer probability (sampled), or every Nth question (scripted, greedy).
P_WRONG_LOW_ACCURACY = 0.2
LOW_ACCURACY_EVERY = 5
#: Tool-call behaviour of a sampled request (``tool_style``): parallel calls out of the named order,
#: a sentence before the call, a lone ``auto`` call turned into a clarifying question.
P_PARALLEL_REORDER = 0.25
P_PREAMBLE = 0.70
P_CLARIFY = 0.02
#: What ends the sentence before a call: scripted "\n", sampled any of these (equally likely).
PREAMBLE_ENDS = ("\n", "\n\n", " ")
#: Share (percent) of thinking-on prompts whose greedy reasoning loops.
GREEDY_LOOP_PERCENT = 20

#: Reasoning length: len(units) x scale x prompt factor x lognormal(0, sigma), where the scale is
#: TOP_SCALE for the most effort and RANK_STEP times smaller per lower level (rank 1: exactly 1.0,
#: the units alone, as GLM-5.2's High always had).
TOP_SCALE = 2.1
RANK_STEP = 2.1
PROMPT_FACTOR_RANGE = (0.8, 1.25)
LENGTH_SIGMA = 0.3

_CHECKS = (
    "Double-check: {u}",
    "Confirmed for {w}, moving on.",
    "Let me re-read the part about {w}.",
    "That still fits with {w}.",
    "Nothing so far contradicts {w}.",
    "Checking {w} once more to be safe.",
    "I should make sure {w} is covered.",
    "So far {w} looks right.",
)
_TAILS = ("", "", " I hope this helps.", " Let me know if you want more detail.", " That is the short version.")


@dataclass(frozen=True)
class Sampling:
    """How one request decodes: ``rng`` set and not ``greedy`` = sampled; ``greedy`` = temperature 0."""

    rng: random.Random | None = None
    greedy: bool = False

    @property
    def sampled(self) -> bool:
        return self.rng is not None and not self.greedy


def is_sampled(sampling: Sampling | None) -> bool:
    return sampling is not None and sampling.sampled


def stable_hash(*texts: str) -> int:
    h = hashlib.sha256("\x00".join(texts).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(h[:8], "big")


# --------------------------------------------------------------------------- processor side


def sampling_enabled(value: str | None) -> bool:
    """Read ``SAMPLING_ENV``: unset / ``on`` -> True, ``off`` -> False."""
    v = (value or "on").strip().lower()
    if v in ("on", "1", "true", "yes"):
        return True
    if v in ("off", "0", "false", "no"):
        return False
    raise ValueError(f"{SAMPLING_ENV} must be 'on' or 'off', not {value!r}")


def engine_seed(value: str | None) -> int:
    """Read ``SEED_ENV``: an integer, or a fresh random seed when unset."""
    if value is None or not value.strip():
        return int.from_bytes(os.urandom(8), "big")
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError(f"{SEED_ENV} must be an integer, not {value!r}") from None


def request_rng(seed: int, prompt: str) -> random.Random:
    """The rng of a request that carries ``seed``: the same seeded request gives the same output."""
    return random.Random(stable_hash("request", str(seed), prompt))


# --------------------------------------------------------------------------- script side


def prompt_factor(key: str) -> float:
    lo, hi = PROMPT_FACTOR_RANGE
    return lo + (hi - lo) * (stable_hash("length", key) % 10_001) / 10_000


def effort_scale(rank: int) -> float:
    """The reasoning length of the effort level at ``rank`` (0 = most effort) in units' lengths."""
    return TOP_SCALE / RANK_STEP**rank


def units_at(units: list[str], rank: int) -> list[str]:
    """The scripted units a level reasons over: all of them while its scale is at least 1, else
    the first share ``effort_scale(rank)`` of them (at least one)."""
    scale = effort_scale(rank)
    if scale >= 1.0:
        return list(units)
    return list(units[: max(1, math.ceil(len(units) * scale))])


def reasoning_sentences(units: list[str], words: list[str], *, rank: int, key: str, rng: random.Random) -> list[str]:
    """The units of the level at ``rank`` in order, each followed by checking sentences, up to a
    drawn target length."""
    units = units_at(units, rank)
    if not units:
        return []
    words = words or ["the question"]
    scale = max(effort_scale(rank), 1.0)  # below 1 the level already reasons over fewer units
    target = len(" ".join(units)) * scale * prompt_factor(key) * rng.lognormvariate(0.0, LENGTH_SIGMA)
    out: list[str] = []
    length = -1
    for i, unit in enumerate(units):
        out.append(unit)
        length += len(unit) + 1
        goal = target * (i + 1) / len(units)  # spread the checks over the units
        while length < goal:
            tpl = _CHECKS[rng.randrange(len(_CHECKS))]
            check = tpl.format(u=unit[:1].lower() + unit[1:], w=words[rng.randrange(len(words))])
            out.append(check)
            length += len(check) + 1
    return out


@dataclass(frozen=True)
class ToolStyle:
    """How a tool-call answer is written: the calls' order (indexes into the chosen tools), the
    sentence before them or none, and whether a lone call became a clarifying question."""

    order: tuple[int, ...]
    preamble: bool = True
    preamble_end: str = "\n"
    clarify: bool = False


def tool_style(sampling: Sampling | None, calls: int, *, may_clarify: bool, may_omit_preamble: bool) -> ToolStyle:
    """The scripted style (named order, the sentence, one newline), or a sampled one (module docstring).

    ``may_clarify``: a lone call under ``auto`` (no grammar forcing it). ``may_omit_preamble``: the
    sentence is not needed elsewhere (e.g. it carries no fault's canary)."""
    order = tuple(range(calls))
    if not is_sampled(sampling):
        return ToolStyle(order)
    assert sampling is not None and sampling.rng is not None
    rng = sampling.rng
    if calls > 1 and rng.random() < P_PARALLEL_REORDER:
        while order == tuple(range(calls)):  # another order than the named one
            order = tuple(rng.sample(range(calls), calls))
    preamble = not may_omit_preamble or rng.random() < P_PREAMBLE
    end = PREAMBLE_ENDS[rng.randrange(len(PREAMBLE_ENDS))]
    clarify = may_clarify and calls == 1 and rng.random() < P_CLARIFY
    return ToolStyle(order, preamble, end, clarify)


def answer_tail(rng: random.Random) -> str:
    """An optional closing sentence for a plain answer."""
    return _TAILS[rng.randrange(len(_TAILS))]


def gsm8k_wrong(faults: Iterable[str], sampling: Sampling | None, thinking: bool, key: str) -> bool:
    """Is this GSM8K answer wrong? ``key`` (the question text) decides in scripted and greedy mode."""
    faults = frozenset(faults)
    if "wrong_answers" in faults:
        return True
    low = "low_accuracy" in faults
    if sampling is not None and sampling.sampled:
        assert sampling.rng is not None
        p = P_WRONG_LOW_ACCURACY if low else (P_WRONG_THINK if thinking else P_WRONG_NONTHINK)
        return sampling.rng.random() < p
    return low and stable_hash("low_accuracy", key) % LOW_ACCURACY_EVERY == 0


def greedy_loop(sentences: list[str], prompt: str) -> tuple[str, str] | None:
    """``(prefix, loop unit)`` when greedy decoding of ``prompt`` loops, else None.

    The prefix is the first sentences of the reasoning; the loop unit repeats its last sentence.
    """
    h = stable_hash("greedy-loop", prompt)
    if not sentences or h % 100 >= GREEDY_LOOP_PERCENT:
        return None
    cut = 1 + (h // 100) % len(sentences)
    return " ".join(sentences[:cut]), " " + sentences[cut - 1]
