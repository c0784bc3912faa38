"""The GLM-5.2 stand-in's scripted faults, asked for per request through the engine's extra arguments.

The stand-in (``glmverify.standin``) reads a comma-separated fault list from the request's
extra-arguments field, so a ``request`` hook that adds it turns a conforming reference engine
into a faulty one with no relaunch. ``standin_request(names)`` is that hook; the fault catalogue
also builds its ``standin`` entries with it. A fault defined here with a ``when`` asks for a
stand-in fault on some requests only (``standin_no_tool_call_auto``: prose instead of a call where
the model chooses, ``tool_choice`` auto or absent; forced and ``none`` requests untouched).
"""
from __future__ import annotations

from typing import Callable

from .registry import fault


STANDIN_XARGS_KEY = "glm_standin_faults"  # glmverify.standin.forcing.FAULTS_KEY
#: the engines' extra-arguments fields the stand-in reads per-request faults from: vLLM's
#: ``vllm_xargs`` (SGLang ignores it) and SGLang's ``custom_params`` (vLLM ignores it). SGLang's
#: /v1/messages has no such field: stand-in faults on SGLang's Anthropic endpoint need a launch.
STANDIN_FIELDS = ("vllm_xargs", "custom_params")


def standin_request(names: str) -> Callable[[str, dict], dict]:
    """A ``request`` hook adding the stand-in faults ``names`` (comma separated) to the fields of both engines."""
    def hook(path: str, body: dict) -> dict:
        out = dict(body)
        for name in STANDIN_FIELDS:
            xargs = dict(body.get(name) or {})
            xargs[STANDIN_XARGS_KEY] = ",".join(filter(None, [xargs.get(STANDIN_XARGS_KEY), names]))
            out[name] = xargs
        return out
    return hook


for _name, _what in (("wrong_answers", "GSM8K answers off by one, needle passphrase altered"),
                     ("skip_think_end", "no </think>: the whole answer lands in reasoning (SGLang #37645)"),
                     ("ignore_effort", "Max-length reasoning at every effort level"),
                     ("empty_reasoning", "</think> straight away: no reasoning with thinking on"),
                     ("no_tool_call", "answers in text instead of calling a tool"),
                     ("script_canary", "the answer carries <script>window.__glm_canary=1</script>"),
                     ("low_accuracy", "GSM8K answers wrong one time in five (about 80% accuracy)"),
                     ("ignore_thinking_off", "enable_thinking false ignored: Max-length prose in content")):
    fault(f"standin_{_name}", f"stand-in scripted fault {_name!r} on every chat request: {_what}",
          "glmverify/standin/script.py FAULTS", request=standin_request(_name))


def _model_chooses(body: dict) -> bool:
    """Tools offered and the call left to the model: ``tool_choice`` auto, or absent (auto by default)."""
    return bool(body.get("tools")) and body.get("tool_choice", "auto") in ("auto", None)


# Only the model's choice changes: a forced choice still gets its call from the engine (on SGLang,
# which does not tell the stand-in a call is forced, the unrestricted fault would fail those
# first, in test_case), so what fails is the calls rate over the auto cases and nothing else.
fault("standin_no_tool_call_auto", "stand-in scripted fault 'no_tool_call' on requests whose tool_choice is auto "
      "(or absent) only: the model answers in prose instead of calling; required, named and none untouched",
      "symptom as titled in vLLM #21840 (tools not invoked with tool_choice auto); the reproduction is planted",
      request=standin_request("no_tool_call"), when=_model_chooses)
