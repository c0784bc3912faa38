"""The test tree's own rule: every test module's basename is used once under tests/ and suites/.

pytest imports a test file without an ``__init__.py`` beside it as a top-level module named by its
basename, so two files called ``test_x.py`` in different tiers make the whole collection stop with
"import file mismatch" — but only when both tiers are collected together (``make test``), never in
``make unit`` alone. This check makes the unit tier see it.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def duplicate_basenames(roots: list[Path], base: Path = ROOT) -> dict[str, list[str]]:
    """Basenames of ``*.py`` files under ``roots`` used more than once, each with its paths."""
    seen: dict[str, list[str]] = defaultdict(list)
    for root in roots:
        for path in root.rglob("*.py"):
            if "__pycache__" in path.parts or path.name in ("conftest.py", "__init__.py"):
                continue
            if (path.parent / "__init__.py").exists():
                continue  # a package module is imported by its dotted name, not its basename
            seen[path.name].append(str(path.relative_to(base)))
    return {name: sorted(paths) for name, paths in seen.items() if len(paths) > 1}


def test_test_module_basenames_are_unique():
    dups = duplicate_basenames([ROOT / "tests", ROOT / "suites"])
    assert not dups, f"rename one of each: {dups}"


def test_duplicate_finder_can_fail(tmp_path):
    for tier in ("a", "b"):
        (tmp_path / tier).mkdir()
        (tmp_path / tier / "test_same.py").write_text("")
    (tmp_path / "b" / "test_other.py").write_text("")
    assert duplicate_basenames([tmp_path / "a", tmp_path / "b"], base=tmp_path) == {
        "test_same.py": ["a/test_same.py", "b/test_same.py"]}
