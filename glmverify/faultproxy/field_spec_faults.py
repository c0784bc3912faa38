"""Field bugs of long context and speculative decoding, reproduced at the HTTP API.

* ``spec_accept_decay`` (vllm-ascend #13523): the accepted-token counters of ``/metrics`` grow ever
  slower with each scrape (the proxy's ``state`` counts scrapes and keeps, per series, the last
  real and the last reported value; a scrape reports ``last reported + real increase x
  0.5 ** (scrapes / DECAY_HALF_LIFE)``). Drafts and draft tokens are the engine's, every
  accepted series (the total and each position) is slowed by the same factor, so the counters
  stay consistent and monotonic while the accept length of a window decays toward 1.0 over the
  run; the first windows still pass a mean check.
* ``spec_position_collapse`` (vLLM PR #46075): ``vllm:spec_decode_num_accepted_tokens_per_pos`` of
  every position >= 1 rewritten to ``POSITION_SHARE`` (10%) of position 0's. Kept consistent:
  ``vllm:spec_decode_num_accepted_tokens`` is rewritten to the sum of the rewritten positions (so
  the mean accept length is 1 + that sum / drafts), positions never rise with k, drafts and draft
  tokens are the engine's, and every counter stays monotonic. Not kept: the bonus-token
  accounting of a real collapsed drafter (more, shorter drafts); with the ngram reference's
  position-0 rate (~0.9) the mean is about 1 + 0.9 x 1.4 = 2.3, at or above the reference-ngram
  row's minimum 1.5, so only the per-position check can see it.
* ``long_context_corrupt`` (vLLM #47827, GB300 DSA kernel): non-stream chat and ``/v1/messages``
  answers whose prompt plus output reaches ``CORRUPT_FROM_TOKENS`` (~4k, as reported; the
  threshold is kept, not scaled, so on the reference's 16k window the failure starts at the sweep's
  4k size) come back corrupted: every text turned into the ``!`` runs such kernels produce, tool
  calls included.
* ``messages_tool_markup_near_window`` (vLLM #42400): on ``/v1/messages`` (non-stream) with a
  prompt over ``NEAR_WINDOW`` (75%) of the window, tool calls are left as raw GLM markup in a text
  block: no tool_use block, ``stop_reason: end_turn``. The window is the reference rows'
  (``REFERENCE_WINDOW``: the proxy sees answers, not the row).
* ``gsm8k_wrong_with_spec`` (vLLM #46834, SGLang #28685): GSM8K-like requests only (the last user
  message asks for ``The answer is N``) ask the stand-in for its ``wrong_answers`` fault, so
  GSM8K collapses while short answers (and the needle) stay right. The collapse needs MTP on; the
  stand-in cannot serve GSM8K with speculative decoding (vLLM refuses its logits processor then),
  so the fault runs on the non-speculative reference and imitates the answers.
"""
from __future__ import annotations

import re

from .registry import fault
from .standin_faults import standin_request

DECAY_HALF_LIFE = 6.0           # scrapes: the accepted increase halves every six scrapes (three windows)
POSITION_SHARE = 0.1            # positions >= 1 accept this share of position 0's tokens
CORRUPT_FROM_TOKENS = 4000      # prompt + output tokens from which output is corrupted (~4k)
REFERENCE_WINDOW = 16384        # the reference rows' --max-model-len / --context-length
NEAR_WINDOW = 0.75              # tool calls break above this share of the window

_ACCEPTED = "vllm:spec_decode_num_accepted_tokens"
_PER_POS = "vllm:spec_decode_num_accepted_tokens_per_pos"


def _sample(line: str) -> tuple[str, str, float] | None:
    """(metric name, series key, value) of a Prometheus sample line, else None."""
    if not line or line.startswith("#"):
        return None
    head, _, value = line.rpartition(" ")
    try:
        v = float(value)
    except ValueError:
        return None
    return head.split("{", 1)[0], head, v


def _is_accepted_counter(name: str) -> bool:
    return name in (_ACCEPTED, _ACCEPTED + "_total", _PER_POS, _PER_POS + "_total")


def _metrics_accept_decay(text: str, state: dict) -> str:
    state["decay_scrapes"] = state.get("decay_scrapes", 0) + 1
    factor = 0.5 ** (state["decay_scrapes"] / DECAY_HALF_LIFE)
    series = state.setdefault("decay_series", {})  # key -> [last real, last reported]
    out = []
    for ln in text.splitlines():
        s = _sample(ln)
        if s and _is_accepted_counter(s[0]):
            _, key, real = s
            last = series.get(key)
            reported = real if last is None else last[1] + max(0.0, real - last[0]) * factor
            series[key] = [real, reported]
            ln = f"{key} {reported:.1f}"
        out.append(ln)
    return "\n".join(out) + "\n"


def _metrics_position_collapse(text: str, state: dict) -> str:
    lines = text.splitlines()
    pos0: dict[str, float] = {}  # labels other than position -> position 0's value
    for ln in lines:
        s = _sample(ln)
        if s and s[0] in (_PER_POS, _PER_POS + "_total") and 'position="0"' in s[1]:
            pos0[re.sub(r',?position="0"', "", s[1])] = s[2]
    rewritten: dict[str, float] = {}  # accepted-total series key -> sum of its positions
    out = []
    for ln in lines:
        s = _sample(ln)
        if s and s[0] in (_PER_POS, _PER_POS + "_total"):
            m = re.search(r'position="(\d+)"', s[1])
            base = re.sub(r',?position="\d+"', "", s[1])
            if m and base in pos0:
                v = pos0[base] if m.group(1) == "0" else round(POSITION_SHARE * pos0[base])
                ln = f"{s[1]} {v:.1f}"
                total_key = base.replace(_PER_POS, _ACCEPTED, 1)
                rewritten[total_key] = rewritten.get(total_key, 0.0) + v
        out.append(ln)
    final = []
    for ln in out:
        s = _sample(ln)
        if s and s[0] in (_ACCEPTED, _ACCEPTED + "_total") and s[1] in rewritten:
            ln = f"{s[1]} {rewritten[s[1]]:.1f}"
        final.append(ln)
    return "\n".join(final) + "\n"


def _corrupt(text: str) -> str:
    return "!" * max(8, len(text or "")) if text is not None else text


def _chat_long_corrupt(body: dict) -> dict:
    usage = body.get("usage") or {}
    if (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0) < CORRUPT_FROM_TOKENS:
        return body
    for choice in body.get("choices") or []:
        msg = choice.get("message") or {}
        for key in ("content", "reasoning", "reasoning_content"):
            if isinstance(msg.get(key), str):
                msg[key] = _corrupt(msg[key])
        if msg.get("tool_calls"):  # the call is text the kernel corrupted too: no parsed call survives
            msg["content"] = _corrupt(msg.get("content") or "x" * 32)
            msg["tool_calls"] = []
            choice["finish_reason"] = "stop"
    return body


def _messages_long_corrupt(body: dict) -> dict:
    usage = body.get("usage") or {}
    if (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0) < CORRUPT_FROM_TOKENS:
        return body
    blocks = []
    for b in body.get("content") or []:
        if b.get("type") == "thinking":
            blocks.append({**b, "thinking": _corrupt(b.get("thinking"))})
        elif b.get("type") == "text":
            blocks.append({**b, "text": _corrupt(b.get("text"))})
        elif b.get("type") == "tool_use":
            blocks.append({"type": "text", "text": _corrupt("x" * 32)})
        else:
            blocks.append(b)
    body["content"] = blocks
    if body.get("stop_reason") == "tool_use":
        body["stop_reason"] = "end_turn"
    return body


def _markup(name: str, args: dict) -> str:
    pairs = "".join(f"<arg_key>{k}</arg_key><arg_value>{v}</arg_value>" for k, v in (args or {}).items())
    return f"<tool_call>{name}{pairs}</tool_call>"


def _messages_tool_markup(body: dict) -> dict:
    if (body.get("usage") or {}).get("input_tokens", 0) <= NEAR_WINDOW * REFERENCE_WINDOW:
        return body
    uses = [b for b in body.get("content") or [] if b.get("type") == "tool_use"]
    if not uses:
        return body
    rest = [b for b in body.get("content") or [] if b.get("type") != "tool_use"]
    raw = "".join(_markup(b.get("name") or "", b.get("input") or {}) for b in uses)
    texts = [b for b in rest if b.get("type") == "text"]
    if texts:
        texts[-1]["text"] = (texts[-1].get("text") or "") + raw
    else:
        rest.append({"type": "text", "text": raw})
    body["content"] = rest
    body["stop_reason"] = "end_turn"
    return body


_GSM8K_ASK = re.compile(r"the answer is\s+(n|\\?\{?n\}?|<n>|\[n\])\b", re.I)


def _gsm8k_like(body: dict) -> bool:
    """The last user message asks for a final number the GSM8K way (``The answer is N``)."""
    users = [m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        return False
    content = users[-1].get("content")
    text = content if isinstance(content, str) else " ".join(
        p.get("text", "") for p in content or [] if isinstance(p, dict))
    return bool(_GSM8K_ASK.search(text))


fault("spec_accept_decay", "/metrics: accepted-token counters grow ever slower with each scrape (accept length decays toward 1.0)",
      "vllm-ascend #13523", metrics=_metrics_accept_decay)
fault("spec_position_collapse", "/metrics: per-position acceptance after position 0 at 10% of position 0's, mean kept consistent",
      "vLLM PR #46075", metrics=_metrics_position_collapse)
fault("long_context_corrupt", "chat and /v1/messages output corrupted once prompt plus output reaches ~4k tokens",
      "vLLM #47827", chat=_chat_long_corrupt, messages=_messages_long_corrupt)
fault("messages_tool_markup_near_window", "/v1/messages near the window: tool calls as raw markup in text, no tool_use",
      "vLLM #42400", messages=_messages_tool_markup)
fault("gsm8k_wrong_with_spec", "GSM8K-like requests only: the stand-in's wrong answers (short answers stay right)",
      "vLLM #46834, SGLang #28685", request=standin_request("wrong_answers"), when=_gsm8k_like)
