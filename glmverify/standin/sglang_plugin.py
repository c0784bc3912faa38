"""SGLang general plugin that makes the stand-in model generate GLM-5.2's scripted output.

The SGLang half of the stand-in's hooks (``forcing.py`` holds the engine-neutral half, shared with
vLLM's ``processor.py``). SGLang has per-request custom logit processors only (a request may carry
``custom_logit_processor``; no server-wide flag like vLLM's ``--logits-processors``), and
``/v1/messages`` has no field for one. So the stand-in uses SGLang's own plugin framework:

* ``register`` is an entry point of group ``sglang.srt.plugins`` (declared by the dist-info that
  images/sglang-reference/install.sh writes into the SGLang venv). SGLang calls it early in every process (server,
  scheduler, detokenizer); it does nothing unless env ``GLM_STANDIN_SGLANG=1``, so a plain SGLang
  in the same venv is untouched.
* It registers an AROUND hook (SGLang's ``HookRegistry``) on ``Req.__init__`` that gives every
  request without a processor of its own ``GLMStandInLogitProcessor``, exactly as if the client
  had sent it (the server needs ``--enable-custom-logit-processor``). SGLang then does the rest:
  it hands the processor each row's ``Req`` (``custom_params["__req__"]``), keeps rows aligned
  through batch filtering and merging, and applies its own grammar masks, templates, parsers and
  endpoints, which stay untouched and real.
* The processor plans the output once per request (``Scripter.plan`` on the prompt ids) and, at
  every step, leaves only ``plan.token_at(len(req.output_ids))`` finite. The position is exact
  only without the overlap scheduler (with it, ``output_ids`` lags one step behind the batch being
  sampled), hence ``--disable-overlap-schedule`` on the reference rows.

Constraints read from SGLang's ``SamplingParams``: ``temperature`` (``top_k`` 1 is greedy), ``sampling_seed``,
``min_new_tokens``, ``json_schema`` (structured output), ``structural_tag`` (the glm47 detector's
tool-call tag for ``tool_choice`` required / named, read like vLLM's), per-request faults in
``custom_params["glm_standin_faults"]``. Env ``GLM_STANDIN_TOKENIZER``: the stand-in model
directory (its tokenizer decodes the prompt and encodes the output; its ``glmverify_standin.json``
names the profile's effort levels).
"""
from __future__ import annotations

import copy
import functools
import inspect
import json
import logging
import os
from typing import Any

import torch

from glmverify.standin.forcing import FAULTS_KEY, Constraints, Scripter, ebnf_tool_constraint, tool_constraint

try:  # the base class exists only in the SGLang venv; the module stays importable elsewhere
    from sglang.srt.sampling.custom_logit_processor import CustomLogitProcessor
except ImportError:  # pragma: no cover - exercised only without SGLang
    CustomLogitProcessor = object  # type: ignore[assignment,misc]

log = logging.getLogger(__name__)

ENABLE_ENV = "GLM_STANDIN_SGLANG"
TOKENIZER_ENV = "GLM_STANDIN_TOKENIZER"
REQ_TARGET = "sglang.srt.managers.schedule_batch.Req.__init__"
_PLAN_ATTR = "_glm_standin_plan"

_scripter: Scripter | None = None


def scripter() -> Scripter:
    """The process's Scripter (built on first use: only the scheduler process samples)."""
    global _scripter
    if _scripter is None:
        path = os.environ.get(TOKENIZER_ENV)
        if not path:
            raise RuntimeError(f"{TOKENIZER_ENV} must name the stand-in model directory")
        _scripter = Scripter(path)
    return _scripter


def constraints(sp: Any) -> Constraints:
    """What SGLang's ``SamplingParams`` ask of the output."""
    custom = sp.custom_params if isinstance(getattr(sp, "custom_params", None), dict) else {}
    json_schema: dict | bool | None = None
    tool_required, allowed, single = False, None, False
    if getattr(sp, "json_schema", None):
        try:
            json_schema = json.loads(sp.json_schema)
        except ValueError:
            json_schema = {}
    elif getattr(sp, "structural_tag", None):
        tool_required, allowed, single = tool_constraint(sp.structural_tag)
    elif getattr(sp, "ebnf", None):   # the glm47 parser's whole-turn grammar (tool_choice required / named)
        tool_required, allowed, single = ebnf_tool_constraint(sp.ebnf)
    faults = custom.get(FAULTS_KEY)
    temperature = getattr(sp, "temperature", 1.0)
    # SGLang's SamplingParams turns temperature 0 into temperature 1.0 with top_k 1 (greedy by
    # top-k): read it back as greedy, or a greedy request would be sampled here
    if getattr(sp, "top_k", None) == 1:
        temperature = 0.0
    return Constraints(temperature=temperature, seed=getattr(sp, "sampling_seed", None),
                       min_tokens=getattr(sp, "min_new_tokens", 0) or 0,
                       faults=str(faults) if faults else None, json_schema=json_schema,
                       tool_required=tool_required, allowed_tools=allowed, single_tool_call=single)


class GLMStandInLogitProcessor(CustomLogitProcessor):
    """Forces each request's output to its ``Scripter.plan``; SGLang builds it with no arguments."""

    def __call__(self, logits: torch.Tensor, custom_param_list: list[dict] | None = None) -> torch.Tensor:
        if not custom_param_list:
            return logits
        s = scripter()
        vocab = logits.shape[-1]
        for row, params in enumerate(custom_param_list):
            req = (params or {}).get("__req__")
            if req is None:
                continue
            plan = getattr(req, _PLAN_ATTR, None)
            if plan is None:
                plan = s.plan(list(req.origin_input_ids), constraints(req.sampling_params))
                setattr(req, _PLAN_ATTR, plan)
            tok = plan.token_at(len(req.output_ids))
            if tok < vocab:
                logits[row].fill_(float("-inf"))
                logits[row, tok] = 0.0
        return logits


def _give_processor(original, *args, **kwargs):
    """AROUND ``Req.__init__``: a request without its own processor gets the stand-in's."""
    bound = _signature(original).bind(*args, **kwargs)
    a = bound.arguments
    if a.get("custom_logit_processor") is None:
        a["custom_logit_processor"] = _SERIALISED
        sp = a.get("sampling_params")
        if sp is not None and not isinstance(sp.custom_params, dict):
            sp = copy.copy(sp)  # Req copies it too before adding __req__; never mutate the caller's
            sp.custom_params = {}
            a["sampling_params"] = sp
    return original(*bound.args, **bound.kwargs)


@functools.cache
def _signature(fn) -> inspect.Signature:
    return inspect.signature(fn)  # once per hooked function, not per request


_SERIALISED: str | None = None


def register() -> None:
    """Entry point (group ``sglang.srt.plugins``): install the hook when ``GLM_STANDIN_SGLANG=1``."""
    global _SERIALISED
    if os.environ.get(ENABLE_ENV) != "1":
        return
    from sglang.srt.plugins.hook_registry import HookRegistry, HookType

    _SERIALISED = GLMStandInLogitProcessor.to_str()
    HookRegistry.register(REQ_TARGET, _give_processor, HookType.AROUND)
    log.info("glm stand-in: every request gets GLMStandInLogitProcessor (pid %d)", os.getpid())
