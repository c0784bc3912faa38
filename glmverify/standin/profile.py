"""The model profile the stand-in imitates: thinking switch and ordered effort levels, as plain data.

The builder renders the chat template's effort logic from a ``StandinProfile`` and writes it to
``glmverify_standin.json`` in the model directory; the engine hooks read it back (``load``) so the
script knows which rendered effort word is which level. Nothing here imports the matrix: the
builder accepts any object shaped like ``glmverify.matrix.Profile`` (``from_profile``), and the
engine processes, which have no matrix, read only the JSON.

Levels are ordered most effort first. A level's *rank* is its index (0 = most effort); the
script's reasoning length shrinks with the rank (``sampling.effort_scale``). A prompt without an
effort line, or with a word the profile does not know, reasons at rank 0, as GLM-5.2 does when
its template falls through to Max.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The stand-in's profile file in the model directory.
CONFIG_NAME = "glmverify_standin.json"
#: Where the level's word goes in ``system_line``.
LEVEL_FIELD = "{level}"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNSAFE = re.compile(r"[{}\n\r]")  # the system line and the words are written into the template source


@dataclass(frozen=True)
class StandinProfile:
    name: str
    thinking_variable: str
    thinking_default: bool
    effort_variable: str
    default: str
    levels: tuple[tuple[str, str], ...]  # (requested value, rendered word), most effort first
    fallback: str
    system_line: str

    def __post_init__(self) -> None:
        keys = [k for k, _ in self.levels]
        problems = []
        if not keys:
            problems.append("no effort levels")
        if len(set(keys)) != len(keys) or len({w for _, w in self.levels}) != len(keys):
            problems.append(f"levels and their words must be unique: {self.levels}")
        for what in ("default", "fallback"):
            if getattr(self, what) not in keys:
                problems.append(f"{what} {getattr(self, what)!r} is not a level of {keys}")
        for what in ("thinking_variable", "effort_variable"):
            if not _IDENTIFIER.fullmatch(getattr(self, what)):  # it is written into the template source
                problems.append(f"{what} {getattr(self, what)!r} is not a template variable name")
        if self.system_line.count(LEVEL_FIELD) != 1:
            problems.append(f"system_line {self.system_line!r} must hold {LEVEL_FIELD} once")
        elif any(_UNSAFE.search(t) for t in self.line_parts()):
            problems.append(f"system_line {self.system_line!r}: no braces or line breaks around {LEVEL_FIELD}")
        for text in (t for lv in self.levels for t in lv):
            if not text or _UNSAFE.search(text) or "'" in text or "\\" in text:  # written as Jinja literals
                problems.append(f"level or word {text!r}: no quotes, backslashes, braces or line breaks")
        if problems:
            raise ValueError(f"stand-in profile {self.name!r}: " + "; ".join(problems))

    @property
    def words(self) -> dict[str, str]:
        return dict(self.levels)

    def line_parts(self) -> tuple[str, str]:
        """The system line around the level's word: ``(before, after)``."""
        before, _, after = self.system_line.partition(LEVEL_FIELD)
        return before, after

    def word_in_line(self, text: str) -> str | None:
        """The effort word of a rendered system line, or None when ``text`` is not that line."""
        before, after = self.line_parts()
        text = text.strip()
        if not text.startswith(before) or not text.endswith(after) or len(text) < len(before) + len(after):
            return None
        return text[len(before): len(text) - len(after)].strip()

    def rank_of_word(self, word: str | None) -> int:
        """0 for the most effort (also: no line, an unknown word); 1, 2 ... for each lower level."""
        for rank, (_, w) in enumerate(self.levels):
            if w == word:
                return rank
        return 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "thinking_variable": self.thinking_variable,
            "thinking_default": self.thinking_default,
            "effort": {"variable": self.effort_variable, "default": self.default,
                       "levels": [list(lv) for lv in self.levels], "fallback": self.fallback,
                       "system_line": self.system_line},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StandinProfile:
        e = data["effort"]
        return cls(name=str(data["name"]), thinking_variable=data["thinking_variable"],
                   thinking_default=bool(data["thinking_default"]), effort_variable=e["variable"],
                   default=e["default"], levels=tuple((str(k), str(w)) for k, w in e["levels"]),
                   fallback=e["fallback"], system_line=e["system_line"])


#: GLM-5.2 (matrix.yaml ``profiles.glm-5.2``): Max by default, High the only lower level.
GLM_52 = StandinProfile(name="glm-5.2", thinking_variable="enable_thinking", thinking_default=True,
                        effort_variable="reasoning_effort", default="max",
                        levels=(("max", "Max"), ("high", "High")), fallback="max",
                        system_line="Reasoning Effort: {level}")


def from_profile(profile: Any | None) -> StandinProfile:
    """A ``StandinProfile`` from a matrix profile (``glmverify.matrix.Profile`` or alike); None: GLM-5.2."""
    if profile is None:
        return GLM_52
    if isinstance(profile, StandinProfile):
        return profile
    eff = profile.effort
    return StandinProfile(name=profile.name, thinking_variable=profile.thinking_variable,
                          thinking_default=bool(getattr(profile, "thinking_default", True)),
                          effort_variable=eff.variable, default=eff.default,
                          levels=tuple((str(k), str(w)) for k, w in dict(eff.levels).items()),
                          fallback=eff.fallback, system_line=eff.system_line)


def load(model_dir: str | os.PathLike | None) -> StandinProfile:
    """The profile a model directory was built for (GLM-5.2 when it has no profile file)."""
    if not model_dir:
        return GLM_52
    path = Path(model_dir) / CONFIG_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return GLM_52
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable stand-in profile: {exc}") from exc
    return StandinProfile.from_json(data)
