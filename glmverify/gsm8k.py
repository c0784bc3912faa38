"""GSM8K loading, seeded sampling and scoring (content-only answer extraction).

Confidence bounds on accuracy are the decision layer's (``glmverify.verdicts``, statsmodels).

The data is read from the shared data folder (never copied into the repo), or from a path or URL
given on the command line with an optional sha256 check.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

from .paths import GSM8K_DEFAULT

DEFAULT_PATH = GSM8K_DEFAULT
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


class Sample(list):
    seed: int = 0


def load(source: str | None = None, sha256: str | None = None) -> list[dict]:
    src = source or str(DEFAULT_PATH)
    if src.startswith(("http://", "https://")):
        import httpx

        r = httpx.get(src, timeout=60, follow_redirects=True)
        r.raise_for_status()
        raw = r.content
    else:
        p = Path(src)
        if not p.is_file():
            raise FileNotFoundError(f"GSM8K test set not found at {p}; pass --gsm8k PATH_OR_URL")
        raw = p.read_bytes()
    if sha256 and hashlib.sha256(raw).hexdigest() != sha256.lower():
        raise ValueError(f"GSM8K data {src}: sha256 {hashlib.sha256(raw).hexdigest()} != expected {sha256}")
    items = []
    for i, line in enumerate(raw.decode("utf-8").splitlines()):
        if not line.strip():
            continue
        d = json.loads(line)
        items.append({"id": f"gsm8k-test-{i:04d}", "question": d["question"], "answer": reference_answer(d["answer"])})
    return items


def reference_answer(answer: str) -> str:
    return normalize(answer.rsplit("####", 1)[-1].strip())


def normalize(num: str) -> str:
    num = num.replace(",", "").strip().rstrip(".")
    try:
        f = float(num)
    except ValueError:
        return num
    return str(int(f)) if f == int(f) else str(f)


def extract(content: str | None) -> str | None:
    """The final answer in the content: 'The answer is N', \\boxed{N}, else the last number."""
    if not content:
        return None
    for pat in (r"answer is\s*\$?(-?\d[\d,]*(?:\.\d+)?)", r"\\boxed\{\s*\$?(-?\d[\d,]*(?:\.\d+)?)\s*\}", r"####\s*(-?\d[\d,]*(?:\.\d+)?)"):
        m = re.findall(pat, content, flags=re.IGNORECASE)
        if m:
            return normalize(m[-1])
    nums = NUMBER.findall(content)
    return normalize(nums[-1]) if nums else None


def sample(items: list[dict], n: int, seed: int, shuffle: bool = False) -> Sample:
    """The same questions for every row: a seeded choice over the whole set (n=0: all; with
    ``shuffle`` the whole set comes in a seeded order, so a sequential draw takes a random prefix)."""
    rng = random.Random(seed)
    if shuffle:
        chosen = rng.sample(items, len(items))[: (n or len(items))]
    else:
        chosen = items if n == 0 or n >= len(items) else rng.sample(items, n)
    s = Sample(chosen)
    s.seed = seed
    return s


def score(items: list[dict], contents: list[str | None]) -> dict:
    rows = []
    for q, c in zip(items, contents):
        got = extract(c)
        rows.append({"id": q["id"], "expected": q["answer"], "got": got, "correct": got == q["answer"], "valid": got is not None})
    n = len(rows)
    correct = sum(r["correct"] for r in rows)
    return {"n": n, "correct": correct, "accuracy": correct / n if n else 0.0,
            "invalid_rate": sum(not r["valid"] for r in rows) / n if n else 0.0, "items": rows}
