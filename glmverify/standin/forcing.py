"""The engine-neutral half of the stand-in's hooks: a request's constraints in, token ids to force out.

Both engines' hooks are thin: ``processor.py`` (vLLM, ``--logits-processors``) and
``sglang_plugin.py`` (SGLang, a general plugin that gives every request a custom logit processor)
each read their engine's request object into a ``Constraints`` value and ask ``Scripter.plan`` for
the output; then, at every decoding step, they leave only ``Plan.token_at(len(output_ids))``
finite. Everything else (the script, sampling mode, faults, the end-of-turn token) is decided here,
once, so the same prompt gives the same behaviour on vLLM and on SGLang.

Decoding mode per request (``script.Sampling``):

* env ``GLM_STANDIN_SAMPLING=off``: scripted exact output, whatever the temperature.
* ``temperature`` < 1e-5: greedy. A greedy repetition loop (``Response.loop``) has no end-of-turn
  token: its tokens repeat (indexed modulo their length) until the engine stops at ``max_tokens``.
* otherwise sampled, with ``random.Random`` seeded from ``(seed, prompt)`` when the request has a
  seed (the same seeded request gives the same output), else from the engine rng, seeded by env
  ``GLM_STANDIN_SEED`` or, unset, by ``os.urandom`` (the seed is logged at start-up).

Faults: env ``GLM_STANDIN_FAULTS`` (comma separated, read at start-up) plus per-request faults
the hook reads from the engine's extra-arguments field; see ``script.FAULTS``.

Profile: the model directory's ``glmverify_standin.json`` (written by ``build.py``) names the
effort levels its template renders, most effort first; the script ranks the prompt's effort line
by it (``profile.load``; a directory without the file is GLM-5.2's).
"""
from __future__ import annotations

import json
import logging
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glmverify.standin import profile as standin_profile
from glmverify.standin import script

log = logging.getLogger(__name__)

#: Per-request faults, in the engine's extra-arguments field (vLLM ``vllm_xargs``, SGLang
#: ``custom_params``).
FAULTS_KEY = "glm_standin_faults"
_PAD_TEXT = " "
_GREEDY_EPS = 1e-5  # vLLM's _SAMPLING_EPS (SGLang uses the same bound): a lower temperature is greedy


@dataclass(frozen=True)
class Constraints:
    """What a request asks of the output, read from the engine's own request object."""

    temperature: float | None = 1.0
    seed: int | None = None
    min_tokens: int = 0
    faults: str | None = None  # per-request faults, comma separated
    json_schema: dict | bool | None = None  # structured output the answer must satisfy
    tool_required: bool = False  # a grammar forces tool calls (tool_choice required / named)
    allowed_tools: list[str] | None = None
    single_tool_call: bool = False
    choice: str | None = None  # a choice grammar: answer with this text


@dataclass
class Plan:
    """The tokens to force: ``tokens`` (ending in the end-of-turn token, unless it loops), then
    ``loop`` repeated without end (a greedy repetition loop)."""

    tokens: list[int]
    loop: list[int] | None = None
    text: str = field(default="", repr=False)

    def token_at(self, pos: int) -> int:
        if pos < len(self.tokens):
            return self.tokens[pos]
        if self.loop:
            return self.loop[(pos - len(self.tokens)) % len(self.loop)]
        return self.tokens[-1]  # past the script (ignore_eos): keep ending the turn


def load_tokenizer(path: str) -> Any:
    """A ``tokenizers.Tokenizer`` from the model dir (fast, no transformers needed)."""
    from tokenizers import Tokenizer

    p = Path(path)
    if (p / "tokenizer.json").is_file():
        return Tokenizer.from_file(str(p / "tokenizer.json"))
    return Tokenizer.from_pretrained(path)


# SGLang 0.5.23's glm47 parser constrains the whole assistant turn with one EBNF grammar (sampling
# params ``ebnf`` with ``ebnf_full_assistant``): its tool-call blocks repeat ``+`` when a call is
# required (tool_choice required or named), ``*`` under auto; one rule per allowed tool names it
_EBNF_BLOCKS = re.compile(r"^tool_call_blocks ::= \(\s*tool_call_unit\s*\)([+*?]?)", re.M)
_EBNF_CALL = re.compile(r'^call_[0-9a-f]+ ::= "([^"]+)"', re.M)


def ebnf_tool_constraint(ebnf: str | None) -> tuple[bool, list[str] | None, bool]:
    """Read SGLang's full-assistant EBNF: ``(call_required, allowed_tool_names, single_call)``, as
    ``tool_constraint``; a grammar without tool-call blocks requires nothing."""
    m = _EBNF_BLOCKS.search(ebnf or "")
    if not m:
        return False, None, False
    return m.group(1) in ("+", ""), _EBNF_CALL.findall(ebnf or "") or None, m.group(1) in ("", "?")


def tool_constraint(structural_tag: str | dict | None) -> tuple[bool, list[str] | None, bool]:
    """Read an xgrammar structural tag: ``(call_required, allowed_tool_names, single_call)``.

    Both engines build these for GLM tool calls. Shapes seen from vLLM 0.32's glm47 parser:
    ``tags_with_separator`` (non-strict tools; ``at_least_one`` for required/named,
    ``stop_after_first`` for named or ``parallel_tool_calls: false``), ``triggered_tags`` (strict
    tools, or auto), a bare ``tag`` (a named strict tool), an ``or`` of the tool tag and an output
    format (auto plus ``response_format``). ``allowed_tool_names`` is None when the tag lists no
    GLM tool calls.
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


class Scripter:
    """One per engine process: the tokenizer, the profile, the end-of-turn ids, faults and the engine rng.

    ``model_dir`` holds the profile file; by default the tokenizer's directory (the stand-in's own).
    """

    def __init__(self, tokenizer_path: str, model_dir: str | None = None) -> None:
        self.tokenizer = load_tokenizer(tokenizer_path)
        self.profile = standin_profile.load(model_dir or tokenizer_path)
        self.end_answer = self._token_id("<|user|>")
        self.end_tools = self._token_id("<|observation|>")
        self.pad_ids = self.tokenizer.encode(_PAD_TEXT, add_special_tokens=False).ids
        self.faults = script.parse_faults(os.environ.get(script.FAULTS_ENV))
        self.sampling_on = script.sampling_enabled(os.environ.get(script.SAMPLING_ENV))
        self.seed = script.engine_seed(os.environ.get(script.SEED_ENV))
        self.rng = random.Random(self.seed)
        log.warning("glm stand-in: profile %s, effort levels %s (most effort first)", self.profile.name,
                    ", ".join(w for _, w in self.profile.levels))
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

    def sampling_for(self, c: Constraints, prompt: str) -> script.Sampling | None:
        """Scripted (None), greedy or sampled: see the module docstring."""
        if not self.sampling_on:
            return None
        if c.temperature is not None and c.temperature < _GREEDY_EPS:
            return script.Sampling(greedy=True)
        if c.seed is not None:
            return script.Sampling(script.request_rng(c.seed, prompt))
        return script.Sampling(random.Random(self.rng.getrandbits(64)))

    def plan(self, prompt_ids: list[int] | None, c: Constraints) -> Plan:
        prompt = self.tokenizer.decode(list(prompt_ids or []), skip_special_tokens=False)
        faults = self.faults | script.parse_faults(c.faults) if c.faults else self.faults
        try:
            if c.choice is not None:
                resp = script.Response(c.choice)
            else:
                resp = script.generate(
                    prompt,
                    json_schema=c.json_schema,
                    faults=faults,
                    tool_required=c.tool_required,
                    allowed_tools=c.allowed_tools,
                    single_tool_call=c.single_tool_call,
                    sampling=self.sampling_for(c, prompt),
                    profile=self.profile,
                )
        except Exception:  # never take the engine down: answer something
            log.exception("glm stand-in: script failed; answering with a fixed text")
            resp = script.Response("The stand-in script failed on this prompt.")
        ids = self.tokenizer.encode(resp.text, add_special_tokens=False).ids
        if resp.loop:
            loop = self.tokenizer.encode(resp.loop, add_special_tokens=False).ids
            if loop:
                return Plan(ids, loop, resp.text)
        while len(ids) < (c.min_tokens or 0) and self.pad_ids:
            ids.extend(self.pad_ids)
        end = self.end_tools if resp.text.rstrip().endswith("</tool_call>") else self.end_answer
        return Plan(ids + [end], None, resp.text)
