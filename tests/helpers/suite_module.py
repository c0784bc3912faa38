"""A suite module (suites/test_*.py) loaded by path under its own name, so tests can call its
check functions and read its constants without pytest collecting it."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SUITES = Path(__file__).resolve().parents[2] / "suites"


def load_suite(filename: str, as_name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(as_name, SUITES / filename)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
