"""vLLM v1 logits processor that makes the stand-in model generate GLM-5.2's scripted output.

    --logits-processors glmverify.standin.processor:GLMStandInProcessor

The vLLM half of the stand-in's hooks (``forcing.py`` holds the engine-neutral half, shared with
SGLang's ``sglang_plugin.py``). For every request added to the persistent batch it reads vLLM's
``SamplingParams`` into ``forcing.Constraints``, asks ``Scripter.plan`` for the output and then, at
every step, leaves only the next planned token finite. The position is the length of the request's
output token list, which vLLM v1 hands over once (``BatchUpdate.added``) and grows in place.

Structured outputs are honoured (the grammar mask runs on the same logits, so the script must
satisfy it): ``structured_outputs.json`` / ``json_object`` -> JSON for that schema;
``structured_outputs.structural_tag`` built by the ``glm47`` tool parser (vLLM 0.32 uses it for
``tool_choice: required``, a named function and ``parallel_tool_calls: false``) -> tool calls only,
among the tools the tag allows; ``choice`` -> the first choice. Per-request faults:
``vllm_xargs: {"glm_standin_faults": "a,b"}``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

from glmverify.standin.forcing import FAULTS_KEY, Constraints, Plan, Scripter, tool_constraint  # noqa: F401

if TYPE_CHECKING:
    from vllm import SamplingParams
    from vllm.config import VllmConfig

log = logging.getLogger(__name__)

XARGS_FAULTS_KEY = FAULTS_KEY


@dataclass
class _Req:
    plan: Plan
    out_ids: list[int]  # vLLM's running output token list (a live reference)


def constraints(params: "SamplingParams") -> Constraints:
    """What vLLM's ``SamplingParams`` ask of the output."""
    extra = getattr(params, "extra_args", None) or {}
    faults = str(extra[XARGS_FAULTS_KEY]) if isinstance(extra, dict) and extra.get(XARGS_FAULTS_KEY) else None
    json_schema: dict | bool | None = None
    tool_required, allowed, single = False, None, False
    choice: str | None = None
    so = getattr(params, "structured_outputs", None)
    if so is not None:
        if so.json is not None:
            try:
                json_schema = json.loads(so.json) if isinstance(so.json, str) else so.json
            except ValueError:
                json_schema = {}
        elif so.json_object:
            json_schema = {"type": "object"}
        elif so.structural_tag is not None:
            tool_required, allowed, single = tool_constraint(so.structural_tag)
        elif so.choice:
            choice = str(so.choice[0])
    return Constraints(temperature=getattr(params, "temperature", 1.0), seed=getattr(params, "seed", None),
                       min_tokens=getattr(params, "min_tokens", 0) or 0, faults=faults, json_schema=json_schema,
                       tool_required=tool_required, allowed_tools=allowed, single_tool_call=single, choice=choice)


class GLMStandInProcessor(LogitsProcessor):
    """Forces each request's output to its ``Scripter.plan`` (script + end-of-turn token)."""

    def __init__(self, vllm_config: "VllmConfig", device: torch.device, is_pin_memory: bool) -> None:
        model_config = vllm_config.model_config
        tok_path = getattr(model_config, "tokenizer", None) or model_config.model
        # the model directory holds the profile file (glmverify_standin.json) the script ranks efforts by
        self.scripter = Scripter(str(tok_path), str(model_config.model))
        self.tokenizer = self.scripter.tokenizer
        self.end_answer = self.scripter.end_answer
        self.end_tools = self.scripter.end_tools
        self.device = device
        self.reqs: dict[int, _Req] = {}

    @classmethod
    def validate_params(cls, sampling_params: "SamplingParams") -> None:
        return None

    def is_argmax_invariant(self) -> bool:
        return False  # it changes the argmax: it must run under greedy sampling too

    def script_tokens(self, prompt_ids: list[int] | None, params: "SamplingParams") -> tuple[list[int], list[int] | None]:
        """``(tokens, loop)``: the output and, for a greedy repetition loop, the part that repeats."""
        plan = self.scripter.plan(prompt_ids, constraints(params))
        return plan.tokens, plan.loop

    # ------------------------------------------------------------------ LogitsProcessor API

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update is None:
            return
        for index in batch_update.removed:
            self.reqs.pop(index, None)
        for index, params, prompt_ids, out_ids in batch_update.added:
            if params is None:
                self.reqs.pop(index, None)
                continue
            self.reqs[index] = _Req(self.scripter.plan(prompt_ids, constraints(params)), out_ids)
        for a, b, direction in batch_update.moved:
            ra, rb = self.reqs.pop(a, None), self.reqs.pop(b, None)
            if direction == MoveDirectionality.SWAP:
                if ra is not None:
                    self.reqs[b] = ra
                if rb is not None:
                    self.reqs[a] = rb
            elif ra is not None:
                self.reqs[b] = ra

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.reqs:
            return logits
        rows: list[int] = []
        cols: list[int] = []
        n_rows, vocab = logits.shape[0], logits.shape[-1]
        for index, req in self.reqs.items():
            if index >= n_rows:
                continue
            tok = req.plan.token_at(len(req.out_ids))
            if tok >= vocab:
                continue
            rows.append(index)
            cols.append(tok)
        if rows:
            r = torch.tensor(rows, dtype=torch.long, device=logits.device)
            c = torch.tensor(cols, dtype=torch.long, device=logits.device)
            logits.index_fill_(0, r, float("-inf"))
            logits[r, c] = 0.0
        return logits
