"""Where each launch flag of a row comes from, and which flags its engine version refuses.

A row's ``launch.args`` should be its recipe's flags. Where the harness has to add one (the guide
names a strategy but not its flags, a multi-node rank, a port the launcher needs), the row lists it
in ``launch.added`` with the reason (and a recipe flag whose value a variant row changes in
``launch.changed``). ``origins(row)`` labels every flag ``seed`` (in the recipe's command, docker
run or fragments), ``harness`` (with the reason) or ``unaccounted``; ``--plan``
prints the labels and ``tests/unit/test_flags.py`` requires that no GPU row has an unaccounted flag.
Reference rows (``hardware: cpu``) are the project's own engine: their extra flags are ``project``.

``refused(row)`` is the launch-time check: flags the row's engine version no longer accepts, from
its adapter's ``removed_flags`` (what is known; absence there means unknown, not accepted;
vllm-ascend inherits vLLM's).
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from .adapters import adapter_for, adapter_for_row


@dataclass(frozen=True)
class Origin:
    flag: str
    value: str | None
    origin: str  # seed | seed, value changed by the harness | harness | project | unaccounted
    reason: str = ""

    def text(self) -> str:
        v = f" {self.value}" if self.value is not None else ""
        return f"{self.flag}{v}: {self.origin}" + (f" ({self.reason})" if self.reason else "")


def _tokens(text: str) -> list[str]:
    try:
        return shlex.split(text.replace("\\\n", " "), comments=True)
    except ValueError:
        return text.split()


def recipe_flags(row) -> set[str]:
    """Every flag name the row's seed text (command, docker run, fragments) contains."""
    src = row.source
    texts = [src.get("command") or "", src.get("docker") or "", *src.get("fragments", [])]
    out = set()
    for t in texts:
        for tok in _tokens(t):
            if re.match(r"^--?[A-Za-z]", tok):
                out.add(tok.split("=", 1)[0])
    return out


def arg_pairs(args: list[str]) -> list[tuple[str, str | None]]:
    out, i = [], 0
    while i < len(args):
        tok = args[i]
        if tok.startswith("-") and len(tok) > 1 and not re.match(r"^-\d", tok):
            name, eq, val = tok.partition("=")
            if eq:
                out.append((name, val))
            elif i + 1 < len(args) and not (args[i + 1].startswith("-") and len(args[i + 1]) > 1):
                out.append((tok, args[i + 1]))
                i += 1
            else:
                out.append((tok, None))
        i += 1
    return out


def origins(row) -> list[Origin]:
    seed = recipe_flags(row)
    added = row.launch.added
    changed = row.launch.changed
    out = []
    for flag, value in arg_pairs(list(row.launch.args)):
        if flag in seed and flag in changed:
            out.append(Origin(flag, value, "seed, value changed by the harness", changed[flag]))
        elif flag in seed:
            out.append(Origin(flag, value, "seed"))
        elif flag in added:
            out.append(Origin(flag, value, "harness", added[flag]))
        elif adapter_for_row(row).reference:
            out.append(Origin(flag, value, "project", "the reference engine's own launch"))
        else:
            out.append(Origin(flag, value, "unaccounted"))
    return out


def _version(text: str | None) -> tuple[int, ...] | None:
    m = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(x) for x in m.groups() if x is not None) if m else None


def _version_of(row) -> tuple[int, ...] | None:
    v = _version(row.engine_version)
    if v is None:  # an image tagged with its version (vllm/vllm-openai-rocm:v0.15.1)
        v = _version(row.image.rsplit(":", 1)[-1]) if ":" in row.image else None
    return v


def refused(row) -> str | None:
    """Why the row's engine version would reject one of its flags, or None (also when unknown)."""
    version = _version_of(row)
    if version is None:
        return None
    flags = {f for f, _ in arg_pairs(list(row.launch.args))}
    for removed in adapter_for(row.engine).removed_flags:
        flag, since, why = removed.flag, removed.since, removed.why
        if flag in flags and version >= since:
            return (f"{flag} is refused by {row.engine} {'.'.join(map(str, version))}: {why}; "
                    "the recipe as written does not start")
    return None
