"""A new engine is one adapter: a plug-in module, written here under ``tmp_path``, subclasses
``EngineAdapter`` and registers it, and a temporary matrix gets a row of that engine. With no file
of the repository touched, the row resolves (load + validate), plans (``plan.plan_text``) and is
listed, and every engine list that used to be written out (``--engine`` choices, the schema's
engine enum, ``engine_kind``, the fault catalogue's engines, the parser environments) includes it.

The controls: before the plug-in is imported, the same matrix is refused (its engine is not in the
schema's enum), and after it is unregistered it is refused again; so the registry, not a list
somewhere, is what makes the engine known.
"""
from __future__ import annotations

import hashlib
import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from glmverify import adapters, cli
from glmverify.faults.model import AFFECTED_ENGINES
from glmverify.matrix import MatrixError, engine_kind, flat_document, known_engines, load, validate
from glmverify.matrix.views import listing
from glmverify.parsers.envs import parser_envs
from glmverify.plan import plan_text

PACKAGE = Path(__file__).resolve().parents[2] / "glmverify"
ENGINE = "toy-engine"
PORT = 9321

PLUGIN = f'''
"""A plug-in engine: its adapter and its registration, nothing else."""
from pathlib import Path

from glmverify.adapters import register
from glmverify.adapters.base import ContainerDefaults, EngineAdapter
from glmverify.parsers.envs import ParserEnv


def _build(venv, version, log_file):
    raise RuntimeError("not built in a unit test")


class ToyAdapter(EngineAdapter):
    name = "{ENGINE}"
    api = "{ENGINE}"
    container = ContainerDefaults(kind="{ENGINE}", default_port={PORT}, health_path="/ready")
    parser_env = ParserEnv("toy", Path(__file__).with_name("toy_runner.py"), _build)


ADAPTER = register(ToyAdapter())
'''


def _package_digest() -> str:
    """One hash of every file of the package, to show the test changes none."""
    h = hashlib.sha256()
    for p in sorted(PACKAGE.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(PACKAGE)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _toy_matrix(tmp_path: Path) -> Path:
    """The repository's matrix flattened, with one extra container row of the new engine."""
    doc = flat_document()
    base = next(r for r in doc["rows"] if r["id"] == "vllm-glm52-fp8-h200")
    row = {**base, "id": "toy-glm52-h200", "engine": ENGINE, "engine_version": "1.0", "image": "example.org/toy:1.0",
           "description": "a plug-in engine's row",
           "source": {"seed": "toy.txt", "command": "toy serve zai-org/GLM-5.2-FP8 --tp 8"},
           "launch": {"launcher": "container", "ipc": "host", "devices": {"gpus": "all"},
                      "args": ["zai-org/GLM-5.2-FP8", "--tp", "8"]}}
    doc["rows"] = [row] + [r for r in doc["rows"] if r["id"] == "reference"]
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _import_plugin(tmp_path: Path):
    module_path = tmp_path / "toy_engine_plugin.py"
    module_path.write_text(textwrap.dedent(PLUGIN))
    spec = importlib.util.spec_from_file_location("toy_engine_plugin", module_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def plugin(tmp_path):
    module = _import_plugin(tmp_path)
    yield module
    adapters.unregister(ENGINE)
    sys.modules.pop("toy_engine_plugin", None)


def _engine_errors(path: Path) -> list[tuple[str, str]]:
    return [(p, m) for p, m in validate(yaml.safe_load(path.read_text())) if p.endswith("/engine")]


def test_the_unregistered_engine_is_refused_by_the_schema(tmp_path):
    path = _toy_matrix(tmp_path)
    assert ENGINE not in adapters.ENGINE_NAMES and ENGINE not in known_engines()
    errors = _engine_errors(path)
    assert errors and errors[0][0] == "rows/0/engine" and "'toy-engine' is not one of" in errors[0][1]
    with pytest.raises(MatrixError, match="rows/0/engine"):
        load(path)


def test_a_new_engine_is_one_adapter(tmp_path):
    before = _package_digest()
    path = _toy_matrix(tmp_path)
    module = _import_plugin(tmp_path)
    try:
        # resolves: load + validate, with the row's engine and its adapter
        assert _engine_errors(path) == [] and validate(yaml.safe_load(path.read_text())) == []
        matrix = load(path)
        row = matrix.row("toy-glm52-h200")
        assert row.engine == ENGINE and not row.is_reference and row.in_container
        assert adapters.adapter_for_row(row) is module.ADAPTER
        assert "toy-glm52-h200" in listing(matrix, matrix.recipe_of)

        # plans: the container the launcher would start, with the adapter's defaults
        plan = plan_text([row])
        assert f"# ---- toy-glm52-h200: {ENGINE} 1.0 on 8x h200 (container)" in plan
        assert "example.org/toy:1.0 zai-org/GLM-5.2-FP8" in plan and "#   --tp 8: seed" in plan
        assert f"127.0.0.1::{PORT}" in plan, "the published port is the adapter's default"
        assert "GET /ready answers 200" in plan, "the health path is the adapter's"

        # every engine list is the registry's
        assert ENGINE in adapters.api_choices() and ENGINE in AFFECTED_ENGINES and ENGINE in known_engines()
        assert engine_kind(ENGINE) == ENGINE
        assert parser_envs()[ENGINE] is module.ADAPTER.parser_env
        ns = cli.build_parser().parse_args(["run", "--endpoint", "http://x", "--engine", ENGINE])
        assert ns.engine == ENGINE
    finally:
        adapters.unregister(ENGINE)
        sys.modules.pop("toy_engine_plugin", None)
    # unregistered, the same matrix is refused again, and no file of the package was written
    assert _engine_errors(path) and ENGINE not in adapters.api_choices() and ENGINE not in parser_envs()
    assert _package_digest() == before


def test_a_reference_row_of_the_new_engine_gets_the_reference_container(plugin, tmp_path):
    doc = yaml.safe_load(_toy_matrix(tmp_path).read_text())
    doc["rows"][0].update(hardware="cpu", accelerators=0)
    path = tmp_path / "reference.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    row = load(path).row("toy-glm52-h200")
    adapter = adapters.adapter_for_row(row)
    assert row.is_reference and adapter.reference and adapter.api == ENGINE and adapter.container.kind == "reference"
