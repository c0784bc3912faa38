"""The project's own tests, in three tiers by directory (each also a marker of the same name):

* ``tests/unit``: pure Python on the core dependencies (no vLLM, torch, Docker, browser or engine);
  ``make unit`` runs them in under a minute on a clone without the reference engines.
* ``tests/integration``: needs installed components but launches no model server: the engines'
  parser venvs, the stand-in with vLLM's processor API, Docker with a tiny base image, Chromium,
  child pytest runs against recorded engine answers.
* ``tests/live``: real engines (vLLM and SGLang references, as processes and containers).

``make test`` runs all three. The suites' plugin (glmverify.plugin) is registered by the root
conftest for every run, and stays inert where no matrix row is collected. ``@pytest.mark.requires(missing)`` with ``missing`` a reason (or None when the component is
there) skips on a developer's machine and fails in CI (helpers.require.need).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers.require import need

TIERS = ("unit", "integration", "live")
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        rel = Path(str(item.fspath)).resolve().relative_to(HERE)
        tier = rel.parts[0] if rel.parts and rel.parts[0] in TIERS else None
        if tier:
            item.add_marker(getattr(pytest.mark, tier))


def pytest_runtest_setup(item):
    for mark in item.iter_markers("requires"):
        need(mark.args[0] if mark.args else None)
