"""Missing components: a skip on a developer's machine, a failure in CI.

CI (env ``CI`` set, as ``.ci/run`` runs) installs every component the tests need (Docker, the
engine venvs, the images), so a test that would skip there for a missing one hides a broken
install step: ``need`` fails it instead.
"""
from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def need(missing: str | None) -> None:
    """``missing``: why a component is unavailable (None: it is there)."""
    if not missing:
        return
    if in_ci():
        pytest.fail(f"CI installs this, yet: {missing}", pytrace=False)
    pytest.skip(missing)


def need_module(name: str):
    """``pytest.importorskip`` that fails in CI: the module, or a skip (a failure in CI)."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        need(f"needs Python module {name} ({exc})")

