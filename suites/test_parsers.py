"""Parser conformance as matrix evidence: GPU rows' parsing cells backed by the engine's own code.

For every (engine, parser version, reasoning parser, tool parser) used by the selected rows, the
GLM-5.2 raw-output catalogue (fixtures/glm52_outputs.jsonl) runs through that engine release's
parsers, stream (seeded chunkings) and non-stream (glmverify.parsers). The result becomes the
basis of the rows' ``reasoning_split``, ``non_think`` and ``tool_calls`` cells: still
``inferred`` (no live run), but "the parsers of this engine version were verified", or the cases
they fail. It never marks a cell verified.

The check itself fails only when the parsers cannot be run; failing catalogue cases are findings
recorded in the cells (and pinned by tests/integration/test_parser_conformance.py).
"""
from __future__ import annotations

import pytest

from glmverify.adapters import adapter_for_row
from glmverify.checks import expect
from glmverify.parsers import catalogue as cat
from glmverify.parsers.envs import EnvError, run_conformance
from glmverify.results import PARSER_PROPERTY

CHUNKINGS = 50


def parser_configs(rows) -> dict[str, dict]:
    """One config per (engine API, parser release, parsers) of the rows. The release is the one
    whose parsers install and run on a CPU machine (the adapter's ``parser_conformance_version``);
    a row whose own version is unknown or not installable here is checked against it, and its
    basis says so."""
    configs: dict[str, dict] = {}
    for row in rows:
        adapter = adapter_for_row(row)
        if adapter.reference:
            continue  # reference rows are verified live
        engine = adapter.api
        reasoning, tool = adapter.parser_flags.names(row.launch.args)
        if not reasoning and not tool:
            continue
        version = adapter.parser_conformance_version
        key = f"{engine}-{version}-{reasoning or 'none'}-{tool or 'none'}"
        cfg = configs.setdefault(key, {"engine": engine, "version": version, "reasoning_parser": reasoning,
                                       "tool_parser": tool, "rows": [], "hardware": set()})
        cfg["rows"].append({"id": row.id, "engine_version": row.engine_version})
        cfg["hardware"].add(row.hardware)
    return configs


def pytest_generate_tests(metafunc):
    if "parser_config" not in metafunc.fixturenames:
        return
    from glmverify.plugin import STATE_KEY

    state = metafunc.config.stash[STATE_KEY]
    params = [pytest.param(cfg, id=key, marks=[pytest.mark.parsers, *(getattr(pytest.mark, hw) for hw in sorted(cfg["hardware"]))])
              for key, cfg in parser_configs(state.rows()).items()]
    metafunc.parametrize("parser_config", params)


def feature_of(case: cat.Case) -> str:
    if case.expect.get("tool_calls"):
        return "tool_calls"
    return "reasoning_split" if case.thinking else "non_think"


def summarise(report: dict, cases: dict[str, cat.Case]) -> dict[str, dict]:
    """Per feature: totals per mode and the failing case ids, with the first differing field."""
    out: dict[str, dict] = {}
    for c in report["cases"]:
        case = cases.get(c["id"])
        if case is None:
            continue
        f = out.setdefault(feature_of(case), {"nonstream": [0, 0], "stream": [0, 0], "failing": []})
        f[c["mode"]][1] += 1
        if c["outcome"] == "passed":
            f[c["mode"]][0] += 1
        else:
            f["failing"].append({"id": c["id"], "mode": c["mode"], "first_diff": c.get("first_diff"),
                                 "detail": (c.get("detail") or "")[:200]})
    return out


def test_parsers(parser_config, record_property):
    cfg = parser_config
    if cfg["tool_parser"] is None and cfg["reasoning_parser"] is None:
        pytest.skip("no parsers configured")
    try:
        report = run_conformance(cfg["engine"], cfg["version"], reasoning_parser=cfg["reasoning_parser"],
                                 tool_parser=cfg["tool_parser"], chunkings=CHUNKINGS, seed=0)
    except EnvError as exc:
        pytest.skip(f"{cfg['engine']} {cfg['version']} parsers cannot be installed here: {exc}")
    cases = {c.id: c for c in cat.load_catalogue()}
    summary = summarise(report, cases)
    record_property(PARSER_PROPERTY, {
        "engine": cfg["engine"], "version": report.get("version", cfg["version"]),
        "reasoning_parser": cfg["reasoning_parser"], "tool_parser": cfg["tool_parser"],
        "chunkings": CHUNKINGS, "rows": cfg["rows"], "features": summary,
    })
    expect(bool(report["cases"]), "the parser runner returned no cases", "parsers.no_cases")
    errors = [c["id"] for c in report["cases"] if c["outcome"] == "error"]
    expect(not errors, f"parser runner errors: {errors}", "parsers.runner_error", cases=errors)
