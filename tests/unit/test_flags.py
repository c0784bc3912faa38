"""Flags the other way round, claims as the guides make them, and the plan's provenance.

* Reverse flag test: every flag of every GPU row is in its recipe or listed in ``launch.added``
  with a reason (tests/unit/test_plan.py proves the forward direction: every recipe flag is in the row).
* The launch-time refusal of flags the row's engine version no longer accepts.
* the plan (``pytest suites -m MARKER --plan``) prints each flag's origin for every marker, and the errata.
* Claims: an inferred cell says what it rests on (vendor-verified / proposed / derived); no recipe
  claims GSM8K accuracy, so no accuracy cell is inferred; a context window is the recipe's own.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from glmverify import flags
from glmverify.matrix import load
from glmverify.plan import plan_text, render_plan, select_rows

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO.parent / "shared" / "seeds"
SEED_TEXT = {p.name: p.read_text() for p in SEEDS.glob("*.txt")} if SEEDS.is_dir() else {}
MATRIX = load()
GPU_ROWS = [r for r in MATRIX.rows if r.hardware != "cpu"]


def norm_ws(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("row", GPU_ROWS, ids=lambda r: r.id)
def test_every_flag_is_the_recipes_or_says_why_the_harness_adds_it(row):
    unaccounted = [o.text() for o in flags.origins(row) if o.origin == "unaccounted"]
    assert not unaccounted, f"{row.id}: flags neither in the recipe nor in launch.added: {unaccounted}"
    seed = flags.recipe_flags(row)
    for flag in row.launch.added:
        assert flag not in seed, f"{row.id}: {flag} is in the recipe, yet listed as harness-added"
        assert flag in {f for f, _ in flags.arg_pairs(row.launch.args)}, f"{row.id}: launch.added names {flag}, which args lack"


def test_an_invented_flag_is_caught():
    row = MATRIX.row("vllm-glm52-fp8-h200")
    bad = dataclasses.replace(row, launch=dataclasses.replace(row.launch, args=row.launch.args + ["--max-num-seqs", "64"]))
    assert [o.flag for o in flags.origins(bad) if o.origin == "unaccounted"] == ["--max-num-seqs"]
    ok = dataclasses.replace(bad, launch=dataclasses.replace(bad.launch, added={"--max-num-seqs": "a reason"}))
    assert not [o for o in flags.origins(ok) if o.origin == "unaccounted"]


def test_the_harness_added_dp_attention_flags_are_marked():
    origins = {o.flag: o for o in flags.origins(MATRIX.row("sglang-glm52-fp8-h200-balanced"))}
    for f in ("--dp", "--enable-dp-attention", "--moe-a2a-backend"):
        assert origins[f].origin == "harness" and "DP-Attention + DeepEP" in origins[f].reason
    assert origins["--chunked-prefill-size"].origin == "seed"
    mn = {o.flag: o for o in flags.origins(MATRIX.row("sglang-glm52-bf16-h200-2node"))}
    assert {mn[f].origin for f in ("--nnodes", "--node-rank", "--dist-init-addr")} == {"harness"}


def test_removed_flags_are_refused_at_launch_where_known():
    rocm = MATRIX.row("vllm-glm47-rocm-mi300x")
    why = flags.refused(rocm)
    assert why and "--disable-log-requests" in why and "0.15.1" in why
    old = dataclasses.replace(rocm, engine_version="0.11.2", image="vllm/vllm-openai-rocm:v0.11.2")
    assert flags.refused(old) is None, "vLLM before 0.12 still accepts it"
    unknown = dataclasses.replace(rocm, engine_version=None, image="vllm/vllm-openai-rocm:latest")
    assert flags.refused(unknown) is None, "an unknown version is not refused (nothing known)"
    assert all(flags.refused(r) is None for r in MATRIX.rows if "--disable-log-requests" not in r.launch.args)
    # every GLM-4.x ROCm row keeps the seed's flag and is refused, with the erratum on its page
    rocm_rows = [r for r in MATRIX.rows if r.id.endswith(("-rocm-mi300x", "-rocm-mi325x", "-rocm-mi355x")) and "glm4" in r.id]
    assert len(rocm_rows) == 15 and all(flags.refused(r) for r in rocm_rows)
    assert all(any("--disable-log-requests" in e["seed"] for e in r.errata) for r in rocm_rows)


def test_a_refused_row_fails_without_launching(tmp_path, monkeypatch):
    """The engine fixture refuses the row before any docker call: every cell fails with the reason."""
    from glmverify import hardware

    row = MATRIX.row("vllm-glm47-rocm-mi300x")
    inv = hardware.Inventory("rocm", "amd-smi", "host",
                             hardware.parse_amd_smi((REPO / "fixtures/hardware/amd-smi-8xmi300x.json").read_text()))
    why, _ = hardware.identify(row.hardware, row.accelerators, host=lambda v: inv)
    assert why is None  # the host is right: only the flag stops it
    assert "does not start" in flags.refused(row)


@pytest.mark.parametrize("row", MATRIX.rows, ids=lambda r: r.id)
def test_the_plan_shows_every_flags_origin_and_the_errata(row):
    text = render_plan(row)
    assert "# flag origins" in text
    block = text.split("# flag origins", 1)[1].split("\n")
    comments = " ".join(ln.lstrip("#").strip() for ln in block[1:] if ln.startswith("#   "))
    for o in flags.origins(row):
        assert norm_ws(o.text()) in comments, (row.id, o.flag)
    for e in row.errata:
        assert "# ERRATUM: the guide writes" in text
    for flag in row.launch.dropped:
        assert f"dropped {flag}:" in text


@pytest.mark.parametrize("marker", sorted({r.hardware for r in MATRIX.rows}))
def test_plan_for_every_marker_prints_the_origins(marker):
    """What ``pytest suites -m MARKER --plan`` prints (tests/integration/test_plan_children.py runs
    pytest itself for every marker), computed in-process from the same plan module."""
    rows = select_rows(MATRIX, marker)
    out = plan_text(rows)
    assert {r.id for r in rows} == {r.id for r in MATRIX.rows if r.hardware == marker}
    planned = re.findall(r"^# ---- (\S+):", out, re.M)
    assert set(planned) == {r.id for r in rows}, (marker, planned)
    assert out.count("# flag origins") == len(rows)
    if any(o.origin == "harness" for r in rows for o in flags.origins(r)):
        assert ": harness (" in out


def test_errata_are_the_guides_own_words():
    assert SEED_TEXT, "seed documents not found"
    rows = {r.id: r for r in MATRIX.rows}
    quoted = {
        "ascend-glm52-w8a8-a2-2node": "--data-parallel-address $local_ip",
        "ascend-glm52-w8a8-a3-pd": "--dp-address $node_p0_ip --dp-rpc-port 16600",
        "ascend-glm52-a2-pd-8node": "6800 6801 6802 6803",
        "ascend-glm52-a2-4node-200k": "--quantization ascend",
        "ascend-glm52-w8a8-a3-2node": "--served-model-name glm-5",
        "vllm-glm52-fp8-h200-sizing": "~744 GB",
        "vllm-glm47-rocm-mi300x": "--disable-log-requests",
    }
    for rid, words in quoted.items():
        assert rows[rid].errata, rid
        assert any(words in e["seed"] for e in rows[rid].errata), rid
        assert any(norm_ws(words) in norm_ws(t) for t in SEED_TEXT.values()), (rid, words)
        # kept as the guide wrote it: the row's own recipe still carries the erratum's words
        if rid != "vllm-glm52-fp8-h200-sizing" and rid != "ascend-glm52-a2-pd-8node":
            recipe = " ".join([rows[rid].source.get("command") or ""] + rows[rid].launch.args
                              + rows[rid].launch.attach["deploy"] if rows[rid].launcher == "attach" else
                              [rows[rid].source.get("command") or ""] + rows[rid].launch.args)
            token = words.split()[0] if rid != "ascend-glm52-w8a8-a3-pd" else "--dp-address $node_p0_ip"
            assert norm_ws(token) in norm_ws(recipe), (rid, token)


# ---- claims -------------------------------------------------------------------------------------------
def test_inferred_cells_say_what_they_rest_on():
    kinds = {}
    for r in MATRIX.rows:
        for f, c in r.declared.items():
            if c.status == "inferred":
                assert c.kind in ("vendor-verified", "proposed", "derived"), (r.id, f)
                kinds.setdefault(c.kind, set()).add(r.id)
    assert all(r.startswith("sglang-") and (r.endswith("-09ca4fc") or "-nvfp4-" in r) for r in kinds["vendor-verified"])
    assert kinds["proposed"] == {r.id for r in MATRIX.rows if re.match(r"sglang-glm52-bf16-\w+-2node", r.id)}
    floating = [r for r in MATRIX.rows if r.image == "lmsysorg/sglang:latest"]
    assert floating and not any(c.kind == "vendor-verified" for r in floating for c in r.declared.values())


def test_signed_off_rows_are_pinned_and_float_separately():
    rows = {r.id: r for r in MATRIX.rows}
    pinned = [r for r in MATRIX.rows if r.id.endswith("-09ca4fc")]
    assert len(pinned) == 13
    for r in pinned:
        assert r.engine_version == "main@09ca4fc" and not r.image_known
        twin = rows[r.id.removesuffix("-09ca4fc")]
        assert twin.image == "lmsysorg/sglang:latest" and twin.launch.args == r.launch.args


def test_cells_no_recipe_claims_are_not_inferred():
    for r in GPU_ROWS:
        assert r.declared["accuracy_smoke"].status != "inferred", f"{r.id}: no guide claims a GSM8K figure"
        if r.engine != "sglang":
            assert r.declared["anthropic_messages"].status != "inferred", f"{r.id}: no vLLM/Ascend guide claims /v1/messages"
        if r.engine == "vllm-ascend":
            for f in ("effort_levels", "non_think"):
                assert r.declared[f].status != "inferred", f"{r.id}: seed 003 says nothing about {f}"


@pytest.mark.parametrize("row", [r for r in GPU_ROWS if r.expect.get("context")], ids=lambda r: r.id)
def test_a_window_is_the_recipes_own(row):
    """expect.context is the recipe's --max-model-len / --context-length, or the guide's own words."""
    n = row.expect["context"]
    args = row.launch.args
    flag_value = any(a in ("--max-model-len", "--max_model_len", "--context-length") and args[i + 1] == str(n)
                     for i, a in enumerate(args[:-1]))
    claim = row.expect.get("context_claim")
    assert flag_value or claim, f"{row.id}: window {n} is neither a flag of the recipe nor a quoted claim"
    if claim:
        assert any(norm_ws(claim) in norm_ws(t) for t in SEED_TEXT.values()), f"{row.id}: context_claim is not verbatim"
    if n == 1048576:
        assert claim and "1M" in claim, f"{row.id}: graded against 1M without a 1M claim"
    assert row.declared["context_1m"].status == "inferred", f"{row.id}: a claimed window is a claim"


def test_no_gpu_row_without_a_1m_claim_is_graded_against_1m():
    one_m = [r.id for r in GPU_ROWS if r.expect.get("context") == 1048576]
    assert one_m == ["vllm-glm52-fp8-b200"]
    assert all(r.declared["context_1m"].status == "not_run" for r in GPU_ROWS if r.expect.get("context") is None)


def test_the_matrix_has_no_duplicate_keys():
    """YAML keeps the last of two equal keys silently; a second launch.dropped would hide the first."""
    class Strict(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        seen = set()
        for k, _ in node.value:
            key = loader.construct_object(k)
            assert key not in seen, f"duplicate key {key!r} at matrix.yaml line {k.start_mark.line + 1}"
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    yaml.load((REPO / "matrix.yaml").read_text(), Strict)
