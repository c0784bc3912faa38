"""Secret redaction for every text that leaves the harness (logs, evidence, reports).

Bottom layer: standard library only. ``REDACT`` is the run's one redactor; the usual token
variables are registered at import, and launchers add the values they pass to an engine.
"""
from __future__ import annotations

import os
from typing import Iterable


class Redactor:
    """Replaces secret values with ``***``; registered once per run, applied to all log text.

    Messages and evidence are clipped before they reach the recorder, and a clip can cut a secret:
    so any run of ``FRAGMENT`` or more characters of a secret (its head before a clip, its tail
    after one) is replaced too, not only the whole value.
    """

    FRAGMENT = 8

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, value: str | None) -> None:
        if value and len(value) >= 4:
            self._secrets.add(value)

    def __call__(self, text: str) -> str:
        if not self._secrets or not text:
            return text
        hit = bytearray(len(text))  # 1 where a character belongs to a secret or a fragment of one
        for s in self._secrets:
            w = min(self.FRAGMENT, len(s))
            for i in range(len(s) - w + 1):
                part = s[i:i + w]
                at = text.find(part)
                while at != -1:
                    hit[at:at + w] = b"\1" * w
                    at = text.find(part, at + 1)
        if not any(hit):
            return text
        out, i = [], 0
        while i < len(text):
            if hit[i]:
                while i < len(text) and hit[i]:
                    i += 1
                out.append("***")
            else:
                j = hit.find(1, i)
                j = len(text) if j == -1 else j
                out.append(text[i:j])
                i = j
        return "".join(out)


REDACT = Redactor()
for _name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GLMVERIFY_API_KEY"):
    REDACT.add(os.environ.get(_name))


def redacted(lines: Iterable[str]) -> list[str]:
    return [REDACT(x) for x in lines]
