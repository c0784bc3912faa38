"""Chat template variants for ``launch`` entries: the stand-in's template with one known defect.

Each variant is a text substitution on ``glmverify/standin/chat_template.jinja`` that must change
the text: when the template changes shape the variant fails loudly instead of launching a
conforming engine under a fault's name.
"""
from __future__ import annotations

import re

from ..paths import PACKAGE_DIR
from .model import CatalogueError

TEMPLATE = PACKAGE_DIR / "standin" / "chat_template.jinja"
TEMPLATES = ("no_effort_line", "reads_thinking", "low_is_high")

_EFFORT_LINE = re.compile(r"\{%- if ns\.think_on -%\}\n<\|system\|>Reasoning Effort:[^\n]*\n\{%- endif -%\}\n")
_THINK_SWITCH = "enable_thinking is defined and enable_thinking is not none and not enable_thinking"
_HIGH_TEST = "reasoning_effort == 'high')"


def template_variant(name: str, text: str | None = None) -> str:
    """The stand-in's chat template with one defect (fails loudly if the template changed shape)."""
    text = TEMPLATE.read_text() if text is None else text
    if name == "no_effort_line":
        new = _EFFORT_LINE.sub("", text, count=1)
    elif name == "reads_thinking":
        new = text.replace(_THINK_SWITCH, "thinking is defined and thinking is not none and not thinking", 1)
    elif name == "low_is_high":  # GLM-5.3's low|high|max reading on a GLM-5.2 deployment: low lowers effort
        new = text.replace(_HIGH_TEST, "reasoning_effort in ('high', 'low'))", 1)
    else:
        raise CatalogueError(f"unknown chat_template variant {name!r} ({', '.join(TEMPLATES)})")
    if new == text:
        raise CatalogueError(f"chat_template variant {name!r}: {TEMPLATE.name} no longer has the expected text")
    return new
