"""The package's layering: every import (module level or inside a function) points down.

Layers, bottom first. A module may import its own layer's modules and any layer below, never one
above; and the import graph has no cycle even inside a layer (a cycle hidden by a function-level
import is still a cycle). A new module must be placed in a layer here, so its place is a decision.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "glmverify"

#: bottom first; a name is a module or a package (all its submodules) under glmverify
LAYERS: tuple[tuple[str, ...], ...] = (
    ("paths", "util", "redact", "options", "cli_help", "failure_codes"),  # stdlib only
    ("matrix", "document", "verdicts", "degeneration", "accuracy_decisions", "accuracy_baseline", "gsm8k", "haystack",
     "hardware", "standin", "parsers",
     "knowledge", "diagnosis", "inference"),                              # data models, the catalogue as knowledge, cells inferred from records
    ("invariants", "ledger", "client", "chat_answers", "chat", "anthropic_stream", "checks", "toolcalls", "behaviour", "engines", "benchclient"),  # talking to an engine
    ("adapters", "flags", "policy", "observed", "performance", "perf_measurement", "perf_mtp", "perf_regimes"),                          # engine differences, decisions
    ("launchers", "container_spec", "container_owner", "container_images", "containers", "session", "results", "merge", "signoff"),  # runs and their records
    ("report", "plan", "eligibility"),                                    # what a run shows and covers
    ("faultproxy", "faults", "plugin_options", "plugin", "cli"),          # entry points
)


def _unit(module: str) -> str:
    """The layer unit of ``glmverify.a.b``: ``a`` (package or module)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer_of(unit: str) -> int | None:
    for i, names in enumerate(LAYERS):
        if unit in names:
            return i
    return None


def _modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        rel = p.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Every glmverify module ``module`` imports, at any depth of its code."""
    pkg = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("glmverify"):
                continue
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("glmverify"))
    return {m for m in found if m in known and m != module}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {m: _imports(m, p, known) for m, p in mods.items()}


GRAPH = _graph()


def test_every_module_has_a_layer():
    unplaced = sorted({_unit(m) for m in GRAPH if _unit(m) and _layer_of(_unit(m)) is None})
    assert not unplaced, f"place these modules in a layer of {__name__}.LAYERS: {unplaced}"


def test_no_upward_import():
    upward = []
    for m, targets in sorted(GRAPH.items()):
        lm = _layer_of(_unit(m))
        for t in sorted(targets):
            lt = _layer_of(_unit(t))
            if lm is not None and lt is not None and lt > lm:
                upward.append(f"{m} (layer {lm}) imports {t} (layer {lt})")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path, or None (iterative DFS, three colours)."""
    colour = dict.fromkeys(graph, 0)
    for start in sorted(graph):
        if colour[start]:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif colour.get(nxt) == 0:
                colour[nxt] = 1
                stack.append((nxt, iter(sorted(graph[nxt]))))
                path.append(nxt)
    return None


def test_no_import_cycle_between_units():
    units: dict[str, set[str]] = {}
    for m, ts in GRAPH.items():
        if _unit(m):
            units.setdefault(_unit(m), set()).update(_unit(t) for t in ts if _unit(t) and _unit(t) != _unit(m))
    cycle = _cycle(units)
    assert cycle is None, "import cycle between modules/packages: " + " -> ".join(cycle)


def test_no_import_cycle_between_modules():
    # a package's __init__ importing its own submodules is how re-exports work, not a cycle
    graph = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in GRAPH.items()}
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"a"}}, True),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, False),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
])
def test_cycle_finder_can_fail(graph, expected):
    assert (_cycle(graph) is not None) is expected
