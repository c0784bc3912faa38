"""vLLM v1 logits processor that makes the stand-in model generate GLM-5.2's scripted output.

    --logits-processors glmverify.standin.processor:GLMStandInProcessor

For every request added to the persistent batch it decodes the prompt token ids with the model's
tokenizer, asks ``script.generate`` for the raw output, encodes it, appends the end-of-turn token
(``<|observation|>`` after tool calls, ``<|user|>`` otherwise: both are in the model's
``eos_token_id`` list, as in GLM's generation config) and then, at every step, leaves only the next
scripted token finite. The position is the length of the request's output token list, which vLLM
v1 hands over once (``BatchUpdate.added``) and grows in place.

Decoding mode per request (``script.Sampling``), from its ``SamplingParams``:

* env ``GLM_STANDIN_SAMPLING=off``: scripted exact output, whatever the temperature.
* ``temperature`` < 1e-5: greedy. A greedy repetition loop (``Response.loop``) has no end-of-turn
  token: its tokens repeat (indexed modulo their length) until vLLM stops at ``max_tokens``.
* otherwise sampled, with ``random.Random`` seeded from ``(params.seed, prompt)`` when the request
  has a seed (the same seeded request gives the same output), else from the engine rng, seeded
  by env ``GLM_STANDIN_SEED`` or, unset, by ``os.urandom`` (the seed is logged at start-up).

Structured outputs are honoured (the grammar mask runs on the same logits, so the script must
satisfy it): ``structured_outputs.json`` / ``json_object`` -> JSON for that schema;
``structured_outputs.structural_tag`` built by the ``glm47`` tool parser (vLLM 0.32 uses it for
``tool_choice: required``, a named function and ``parallel_tool_calls: false``) -> tool calls only,
among the tools the tag allows; ``choice`` -> the first choice.

Faults: env ``GLM_STANDIN_FAULTS`` (comma separated, read at start-up) plus a per-request
``vllm_xargs: {"glm_standin_faults": "a,b"}``; see ``script.FAULTS``.
"""

from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

from glmverify.standin import script

if TYPE_CHECKING:
    from vllm import SamplingParams
    from vllm.config import VllmConfig

log = logging.getLogger(__name__)

XARGS_FAULTS_KEY = "glm_standin_faults"
_PAD_TEXT = " "
_GREEDY_EPS = 1e-5  # vLLM's _SAMPLING_EPS: a lower temperature is greedy decoding


@dataclass
class _Req:
    tokens: list[int]  # the scripted output (with the end-of-turn token, unless it loops)
    loop: list[int] | None  # repeated after ``tokens`` without end (greedy repetition loop)
    out_ids: list[int]  # vLLM's running output token list (a live reference)


def _load_tokenizer(path: str) -> Any:
    """A ``tokenizers.Tokenizer`` from the model dir (fast, no transformers needed)."""
    from tokenizers import Tokenizer

    p = Path(path)
    if (p / "tokenizer.json").is_file():
        return Tokenizer.from_file(str(p / "tokenizer.json"))
    return Tokenizer.from_pretrained(path)


def tool_constraint(structural_tag: str | dict | None) -> tuple[bool, list[str] | None, bool]:
    """Read vLLM's structural tag: ``(call_required, allowed_tool_names, single_call)``.

    Shapes built by vLLM 0.32 for the glm47 parser: ``tags_with_separator`` (non-strict tools;
    ``at_least_one`` for required/named, ``stop_after_first`` for named or
    ``parallel_tool_calls: false``), ``triggered_tags`` (strict tools, or auto), a bare ``tag``
    (a named strict tool), an ``or`` of the tool tag and an output format (auto plus
    ``response_format``). ``allowed_tool_names`` is None when the tag lists no GLM tool calls.
    """
    if structural_tag is None:
        return False, None, False
    try:
        tag = json.loads(structural_tag) if isinstance(structural_tag, str) else structural_tag
    except ValueError:
        return False, None, False
    if not isinstance(tag, dict):
        return False, None, False
    names: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            begin = node.get("begin")
            if isinstance(begin, str) and begin.startswith("<tool_call>"):
                name = begin[len("<tool_call>") :].strip()
                if name and name not in names:
                    names.append(name)
            for v in node.values():
                collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)

    def has_calls(node: Any) -> bool:
        return "<tool_call>" in json.dumps(node)

    def analyze(node: Any) -> tuple[bool, bool]:
        if not isinstance(node, dict):
            return False, False
        kind = node.get("type")
        if kind == "structural_tag":
            return analyze(node.get("format"))
        if kind == "tag":
            return (True, True) if has_calls({"begin": node.get("begin")}) else (False, False)
        if kind in ("tags_with_separator", "triggered_tags", "token_triggered_tags"):
            return bool(node.get("at_least_one")), bool(node.get("stop_after_first"))
        if kind == "sequence":
            req = single = False
            for el in node.get("elements") or []:
                if has_calls(el):
                    r, s1 = analyze(el)
                    req, single = req or r, single or s1
            return req, single
        if kind == "or":
            results = [analyze(el) for el in node.get("elements") or []]
            return bool(results) and all(r for r, _ in results), any(s1 for _, s1 in results)
        return False, False

    collect(tag)
    required, single = analyze(tag)
    if not names:
        return False, None, single
    return required, names, single


class GLMStandInProcessor(LogitsProcessor):
    """Forces each request's output to ``script.generate(prompt)`` + end-of-turn token."""

    def __init__(self, vllm_config: "VllmConfig", device: torch.device, is_pin_memory: bool) -> None:
        model_config = vllm_config.model_config
        tok_path = getattr(model_config, "tokenizer", None) or model_config.model
        self.tokenizer = _load_tokenizer(str(tok_path))
        self.end_answer = self._token_id("<|user|>")
        self.end_tools = self._token_id("<|observation|>")
        self.pad_ids = self.tokenizer.encode(_PAD_TEXT, add_special_tokens=False).ids
        self.faults = script.parse_faults(os.environ.get(script.FAULTS_ENV))
        self.sampling_on = script.sampling_enabled(os.environ.get(script.SAMPLING_ENV))
        self.seed = script.engine_seed(os.environ.get(script.SEED_ENV))
        self.rng = random.Random(self.seed)
        self.device = device
        self.reqs: dict[int, _Req] = {}
        if self.faults:
            log.warning("glm stand-in: faults on: %s", ",".join(sorted(self.faults)))
        if self.sampling_on:
            log.warning("glm stand-in: sampling on, engine seed %d (%s=%d reproduces it)", self.seed,
                        script.SEED_ENV, self.seed)
        else:
            log.warning("glm stand-in: sampling off (%s=off): scripted output", script.SAMPLING_ENV)

    def _token_id(self, text: str) -> int:
        tid = self.tokenizer.token_to_id(text)
        if tid is None:
            raise ValueError(f"the stand-in tokenizer has no {text!r} token: not a stand-in model?")
        return tid

    @classmethod
    def validate_params(cls, sampling_params: "SamplingParams") -> None:
        return None

    def is_argmax_invariant(self) -> bool:
        return False  # it changes the argmax: it must run under greedy sampling too

    # ------------------------------------------------------------------ scripting

    def sampling_for(self, params: "SamplingParams", prompt: str) -> script.Sampling | None:
        """Scripted (None), greedy or sampled: see the module docstring."""
        if not self.sampling_on:
            return None
        temperature = getattr(params, "temperature", 1.0)
        if temperature is not None and temperature < _GREEDY_EPS:
            return script.Sampling(greedy=True)
        seed = getattr(params, "seed", None)
        if seed is not None:
            return script.Sampling(script.request_rng(seed, prompt))
        return script.Sampling(random.Random(self.rng.getrandbits(64)))

    def script_tokens(
        self, prompt_ids: list[int] | None, params: "SamplingParams"
    ) -> tuple[list[int], list[int] | None]:
        """``(tokens, loop)``: the output and, for a greedy repetition loop, the part that repeats."""
        prompt = self.tokenizer.decode(list(prompt_ids or []), skip_special_tokens=False)
        faults = self.faults
        extra = getattr(params, "extra_args", None) or {}
        if isinstance(extra, dict) and extra.get(XARGS_FAULTS_KEY):
            faults = faults | script.parse_faults(str(extra[XARGS_FAULTS_KEY]))
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
        try:
            if choice is not None:
                resp = script.Response(choice)
            else:
                resp = script.generate(
                    prompt,
                    json_schema=json_schema,
                    faults=faults,
                    tool_required=tool_required,
                    allowed_tools=allowed,
                    single_tool_call=single,
                    sampling=self.sampling_for(params, prompt),
                )
        except Exception:  # never take the engine down: answer something
            log.exception("glm stand-in: script failed; answering with a fixed text")
            resp = script.Response("The stand-in script failed on this prompt.")
        ids = self.tokenizer.encode(resp.text, add_special_tokens=False).ids
        if resp.loop:
            loop = self.tokenizer.encode(resp.loop, add_special_tokens=False).ids
            if loop:
                return ids, loop
        min_tokens = getattr(params, "min_tokens", 0) or 0
        while len(ids) < min_tokens and self.pad_ids:
            ids.extend(self.pad_ids)
        end = self.end_tools if resp.text.rstrip().endswith("</tool_call>") else self.end_answer
        return ids + [end], None

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
            tokens, loop = self.script_tokens(prompt_ids, params)
            self.reqs[index] = _Req(tokens, loop, out_ids)
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
            pos = len(req.out_ids)
            if pos < len(req.tokens):
                tok = req.tokens[pos]
            elif req.loop:
                tok = req.loop[(pos - len(req.tokens)) % len(req.loop)]
            else:
                tok = req.tokens[-1]  # past the script (ignore_eos): keep ending the turn
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
