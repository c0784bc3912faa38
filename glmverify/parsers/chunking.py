"""How the conformance tests cut a raw output into stream deltas: GLM-5.2's markers and seeded chunkers.

Stdlib only (the runners import it inside each engine's own venv, with ``catalogue``). A GLM
marker (``<think>``, ``<tool_call>``, ...) is one token of GLM-5.2's tokenizer, so an engine's
detokenizer never splits it across deltas: ``atomize`` keeps each marker whole and ``chunkings``
groups atoms, unless given ``markers=()`` (the text-level stress of ``--split-markers``).
"""
from __future__ import annotations

import random
from typing import Iterable

# Strings that GLM-5.2's tokenizer emits as single (added) tokens: an engine's detokenizer
# never splits them across stream deltas.
GLM_MARKERS: tuple[str, ...] = (
    "<think>", "</think>", "<tool_call>", "</tool_call>",
    "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>",
)
# Turn tokens of the GLM chat template (used to build prompts for token-id based parsers).
GLM_TURN_TOKENS: tuple[str, ...] = (
    "[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>",
    "<|endoftext|>",
)


def atomize(text: str, markers: Iterable[str] = GLM_MARKERS) -> list[str]:
    """Split ``text`` into atoms: each marker is one atom, every other character one atom."""
    markers = sorted(set(markers), key=len, reverse=True)
    atoms: list[str] = []
    i = 0
    while i < len(text):
        for m in markers:
            if m and text.startswith(m, i):
                atoms.append(m)
                i += len(m)
                break
        else:
            atoms.append(text[i])
            i += 1
    return atoms


def chunkings(text: str, n: int, seed: int | str, markers: Iterable[str] = GLM_MARKERS) -> list[list[str]]:
    """``n`` ways to cut ``text`` into stream deltas, deterministic in (seed, text).

    #0 is one atom per delta (1-char chunking; a marker is one token, so one delta),
    #1 is the whole text in one delta, the rest are random groups of 1..k atoms with
    k drawn per chunking from 2..24. With ``markers=()`` the atoms are single characters,
    so markers can be split across deltas too (a harsher test than any detokenizer makes).
    """
    atoms = atomize(text, markers)
    rng = random.Random(f"{seed}\x00{text}")
    result: list[list[str]] = []
    for k in range(n):
        if k == 0:
            sizes = [1] * len(atoms)
        elif k == 1:
            sizes = [len(atoms)] if atoms else []
        else:
            hi = rng.choice((2, 3, 4, 6, 8, 12, 16, 24))
            sizes = []
            left = len(atoms)
            while left > 0:
                s = min(left, rng.randint(1, hi))
                sizes.append(s)
                left -= s
        chunks, pos = [], 0
        for s in sizes:
            chunks.append("".join(atoms[pos:pos + s]))
            pos += s
        if not chunks:
            chunks = [""]
        result.append(chunks)
    return result
