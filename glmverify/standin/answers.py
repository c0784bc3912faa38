"""The answers the stand-in knows: GSM8K questions (gold rationale and answer) and the needle.

* Needle: a sentence ``NEEDLE_TEMPLATE`` anywhere in the conversation plus a last user message
  that asks about the "passphrase" (outside the needle sentence itself) gives the answer
  ``The secret passphrase is X.`` (the first needle in the conversation).
* GSM8K: a last user message containing a question of the GSM8K test set (``GSM8K_ENV`` or the
  default path; whitespace-normalised substring match, the question appearing last wins) gives
  the gold rationale as reasoning and an answer ending ``The answer is N.`` (no ``\\boxed``).

``off_by_one`` and ``wrong_passphrase`` make the wrong answers of the faults and of sampling.
"""
from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

#: The needle sentence; ``{passphrase}`` is one line of text without ". " inside.
NEEDLE_TEMPLATE = "The secret passphrase is {passphrase}."
NEEDLE_RE = re.compile(r"The secret passphrase is ([^\n]+?)\.(?=\s|$)")
#: The word a question must contain for the needle to be answered.
NEEDLE_QUESTION_WORD = "passphrase"

#: Env var naming the GSM8K test JSONL (fields question, answer; answer ends "#### N").
GSM8K_ENV = "GLM_STANDIN_GSM8K"
#: How a GSM8K answer ends.
GSM8K_ANSWER_FORMAT = "The answer is {answer}."
#: Longer user messages are not searched for GSM8K questions (long-context prompts).
GSM8K_MAX_CHARS = 100_000
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_GSM8K_PATH = REPO_ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"


def gsm8k_path() -> Path:
    return Path(os.environ.get(GSM8K_ENV) or DEFAULT_GSM8K_PATH)


def _norm_q(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@functools.lru_cache(maxsize=4)
def _gsm8k_table(path: str, mtime: float) -> tuple[tuple[str, str, str], ...]:
    rows = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                q, a = obj.get("question"), obj.get("answer")
                if not isinstance(q, str) or not isinstance(a, str) or "####" not in a:
                    continue
                rationale, _, final = a.rpartition("####")
                rows.append((_norm_q(q), rationale.strip(), final.strip().replace(",", "")))
    except OSError:
        return ()
    return tuple(rows)


def gsm8k_lookup(text: str) -> tuple[str, str] | None:
    """``(rationale, answer)`` for the GSM8K test question contained in ``text``, if any."""
    path = gsm8k_path()
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    if len(text) > GSM8K_MAX_CHARS:  # a long-context prompt, not a math question: skip the scan
        return None
    norm = _norm_q(text)
    best: tuple[int, int, str, str] | None = None
    for q, rationale, answer in _gsm8k_table(str(path), mtime):
        pos = norm.rfind(q) if q and q in norm else -1  # "in" is the fast test; rfind only on a hit
        # The question asked last wins (few-shot prompts quote solved examples first).
        if pos >= 0 and (best is None or pos > best[0] or (pos == best[0] and len(q) > best[1])):
            best = (pos, len(q), rationale, answer)
    return (best[2], best[3]) if best else None


def off_by_one(answer: str) -> str:
    try:
        return str(int(answer) + 1)
    except ValueError:
        try:
            return repr(float(answer) + 1)
        except ValueError:
            return answer + "1"


def wrong_passphrase(value: str) -> str:
    if not value:
        return "wrong"
    last = value[-1]
    repl = "7" if last.isdigit() and last != "7" else ("8" if last.isdigit() else ("x" if last != "x" else "y"))
    return value[:-1] + repl
