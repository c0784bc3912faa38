"""Reading back the prompt ``chat_template.jinja`` rendered, and the text helpers the script shares.

``parse_prompt(prompt, profile)`` splits the rendered prompt on GLM's role tokens into turns, and
pulls out what the template put in front of them: the effort line (its word, and the level's rank
in the profile: 0 = most effort) and the tools block (one JSON object per line). The generation
prompt at the end says whether thinking is on (``<|assistant|><think>``) or off
(``<|assistant|></think>``).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from .profile import GLM_52, StandinProfile

THINK_START = "<think>"
THINK_END = "</think>"
ROLE_TOKENS = {
    "<|system|>": "system",
    "<|user|>": "user",
    "<|assistant|>": "assistant",
    "<|observation|>": "tool",
}
_ROLE_RE = re.compile("(" + "|".join(re.escape(t) for t in ROLE_TOKENS) + ")")
_TOOLS_HEADER = "\n# Tools"
_TOOL_RESPONSE_RE = re.compile(r"<tool_response>(.*?)</tool_response>", re.S)
# Markup that must never leak from user text into scripted prose.
_TAG_RE = re.compile(r"<[^<>]{0,40}>|\[gMASK\]")

STOPWORDS = frozenset(
    "the a an and or but for with from into onto about what which who whom whose when where why how "
    "is are was were be been being do does did can could would should will shall may might must "
    "this that these those there here please tell give show me you your our its it they them their "
    "of in on at to by as if then than so not no yes".split()
)


@dataclass
class Turn:
    role: str  # system | user | assistant | tool
    text: str
    tool_results: list[str] = field(default_factory=list)


@dataclass
class Prompt:
    thinking: bool
    effort: str | None  # the word of the rendered effort line (GLM-5.2: "High", "Max"), None: no line
    tools: list[dict]  # function objects: {name, description?, parameters?}
    turns: list[Turn]
    effort_rank: int = 0  # the effort level's place in the profile, 0 = most effort (also: no line)

    @property
    def last(self) -> Turn | None:
        return self.turns[-1] if self.turns else None

    @property
    def last_user_text(self) -> str:
        for t in reversed(self.turns):
            if t.role == "user":
                return t.text
        return ""

    def tool(self, name: str) -> dict | None:
        return next((t for t in self.tools if t.get("name") == name), None)


def _parse_tools(block: str) -> list[dict]:
    start, end = block.find("<tools>"), block.rfind("</tools>")
    if start < 0 or end < start:
        return []
    tools = []
    for line in block[start + len("<tools>") : end].splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("function"), dict):
            obj = obj["function"]
        if isinstance(obj, dict) and isinstance(obj.get("name"), str):
            tools.append(obj)
    return tools


def parse_prompt(prompt: str, profile: StandinProfile = GLM_52) -> Prompt:
    """Read back what ``chat_template.jinja``, rendered for ``profile``, made of a conversation."""
    parts = _ROLE_RE.split(prompt)
    segments: list[tuple[str, str]] = []
    for i in range(1, len(parts), 2):
        segments.append((ROLE_TOKENS[parts[i]], parts[i + 1]))
    thinking = True
    if segments and segments[-1][0] == "assistant":
        # The generation prompt: "<think>" (thinking) or "</think>" (non-think).
        gen = segments.pop()[1]
        thinking = gen.startswith(THINK_START) and THINK_END not in gen
    effort: str | None = None
    tools: list[dict] = []
    turns: list[Turn] = []
    for idx, (role, text) in enumerate(segments):
        word = profile.word_in_line(text) if role == "system" and idx == 0 else None
        if word is not None:  # the template's effort line comes first, before tools and turns
            effort = word
            continue
        if role == "system" and text.startswith(_TOOLS_HEADER) and not tools and not turns:
            tools = _parse_tools(text)
            continue
        if role == "tool":
            turns.append(Turn("tool", text, [r for r in _TOOL_RESPONSE_RE.findall(text)]))
            continue
        turns.append(Turn(role, text))
    return Prompt(thinking=thinking, effort=effort, tools=tools, turns=turns,
                  effort_rank=profile.rank_of_word(effort))


# --------------------------------------------------------------------------- text helpers


def seed_of(*texts: str) -> int:
    h = hashlib.sha256("\x00".join(texts).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(h[:8], "big")


def words(text: str, limit: int = 12) -> list[str]:
    """Up to ``limit`` distinct content words of ``text`` (markup and stop words left out)."""
    text = _TAG_RE.sub(" ", text)
    seen: list[str] = []
    for w in re.findall(r"[^\W_][\w'-]*", text):
        w = w.strip("'-")
        if len(w) < 3 or w.lower() in STOPWORDS or w in seen:
            continue
        seen.append(w)
        if len(seen) >= limit:
            break
    return seen


def sanitize(text: str) -> str:
    """User text made safe to echo: no tags, no special-token text, one line."""
    return re.sub(r"\s+", " ", _TAG_RE.sub(" ", text)).strip()


def lc_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s else s
