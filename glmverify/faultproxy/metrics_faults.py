"""Defects in ``/metrics``: the speculative-decoding counters missing, frozen or accepting too little.

The rewrites work on Prometheus text; ``state`` (the proxy's, shared by its requests) keeps the
first answer for the frozen counters.
"""
from __future__ import annotations

from .registry import fault


def _metrics_missing(text: str, state: dict) -> str:
    return "\n".join(ln for ln in text.splitlines() if "spec_decode" not in ln) + "\n"


def _metrics_frozen(text: str, state: dict) -> str:
    return state.setdefault("frozen_metrics", text)


def _metrics_accept_low(text: str, state: dict) -> str:
    """Accepted-token counters scaled to a tenth: the mean accept length drops toward 1 (a drafter
    that stopped matching after an upgrade, SGLang #24795 / #36829), drafts unchanged."""
    out = []
    for ln in text.splitlines():
        name = ln.split("{", 1)[0].split(" ", 1)[0]
        if not ln.startswith("#") and name.startswith("vllm:spec_decode_num_accepted_tokens"):
            head, _, value = ln.rpartition(" ")
            try:
                ln = f"{head} {float(value) / 10:.1f}"
            except ValueError:
                pass
        out.append(ln)
    return "\n".join(out) + "\n"


fault("spec_accept_low", "/metrics: accepted draft tokens a tenth of the engine's (accept length below the minimum)",
      "MTP acceptance collapse (SGLang #24795 / #36829)", metrics=_metrics_accept_low)
fault("spec_metrics_missing", "/metrics without any vllm:spec_decode_* counter",
      "SGLang #24795 / #36829 (MTP silently off after an upgrade)", metrics=_metrics_missing)
fault("spec_metrics_frozen", "/metrics frozen at its first answer: counters never move",
      "stale metrics behind a caching gateway", metrics=_metrics_frozen)
