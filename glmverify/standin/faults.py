"""The stand-in's fault registry: the ways the scripted model can be told to misbehave.

Each name switches one deviation on in ``script.generate`` (the fault catalogue in
``glmverify/faults.py`` checks that the suites notice every one):

* ``wrong_answers``: a GSM8K answer off by one, the needle passphrase altered;
* ``skip_think_end``: no ``</think>``, the whole answer lands in reasoning;
* ``script_canary``: the answer carries ``CANARY`` (markup a report must not execute);
* ``ignore_effort``: every effort level reasons at the most-effort length;
* ``empty_reasoning``: ``</think>`` straight away;
* ``no_tool_call``: answers in text instead of calling a tool, unless a grammar forces the call;
* ``strip_arg_whitespace``: string arguments stripped;
* ``wrong_tool``: calls an offered tool the user did not ask for (the other one offered; where
  every offered tool was asked for, one call fewer), unless a grammar names the tool;
* ``low_accuracy``: GSM8K at about 80% accuracy (``sampling.P_WRONG_LOW_ACCURACY`` when sampled,
  every ``sampling.LOW_ACCURACY_EVERY``-th question by a hash otherwise);
* ``ignore_thinking_off``: thinking off still "thinks": most-effort reasoning-like prose, no tags,
  in front of the answer, unless a grammar constrains the answer.

The engine hooks read ``FAULTS_ENV`` (comma separated) at start-up, plus per-request faults.
"""
from __future__ import annotations

FAULTS_ENV = "GLM_STANDIN_FAULTS"
CANARY = "<script>window.__glm_canary=1</script>"
FAULTS = frozenset(
    {
        "wrong_answers",
        "skip_think_end",
        "script_canary",
        "ignore_effort",
        "empty_reasoning",
        "no_tool_call",
        "strip_arg_whitespace",
        "wrong_tool",
        "low_accuracy",
        "ignore_thinking_off",
    }
)


def parse_faults(value: str | None) -> frozenset[str]:
    """``"a, b"`` -> ``{"a", "b"}`` (unknown names are kept: they simply do nothing)."""
    return frozenset(p.strip() for p in (value or "").split(",") if p.strip())
