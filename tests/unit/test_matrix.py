"""matrix.yaml validation: every bad path named (in the layered file), the run stopped before any launch."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from glmverify.matrix import read_document
from glmverify.paths import DEFAULT_MATRIX
from glmverify.matrix import FEATURES, MatrixError, flat_document, load, parse

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def data():
    """matrix.yaml as written: layers unresolved."""
    return read_document(DEFAULT_MATRIX)


@pytest.fixture
def flat():
    """matrix.yaml resolved into self-contained rows (what one-row matrices are made from)."""
    return flat_document()


def test_repo_matrix_is_valid():
    m = load()
    assert m.features == FEATURES
    assert any(r.hardware == "cpu" for r in m.rows)
    ids = [r.id for r in m.rows]
    assert len(ids) == len(set(ids))


def test_every_row_declares_every_feature_or_is_reference():
    for row in load().rows:
        if row.launcher == "process":
            continue
        missing = [f for f in FEATURES if f not in row.declared]
        assert not missing, f"{row.id} declares no status for {missing}"


def test_invalid_matrix_names_every_bad_path(flat):
    bad = copy.deepcopy(flat)
    bad["rows"][0]["accelerators"] = "eight"           # wrong type
    bad["rows"][1]["features"]["flying"] = {"status": "inferred", "basis": "x"}  # unknown feature
    del bad["rows"][2]["image"]                        # missing image
    with pytest.raises(MatrixError) as exc:
        parse(bad, "bad.yaml")
    paths = {p for p, _ in exc.value.errors}
    assert "rows/0/accelerators" in paths
    assert any(p.startswith("rows/1/features") for p in paths)
    assert "rows/2" in paths and any("image" in m for p, m in exc.value.errors if p == "rows/2")
    text = str(exc.value)
    assert "rows/0/accelerators" in text and "bad.yaml" in text


def test_cross_field_errors(flat):
    bad = copy.deepcopy(flat)
    bad["rows"][1]["id"] = bad["rows"][0]["id"]
    bad["rows"][0]["profile"] = "glm-9"
    bad["profiles"]["glm-5.2"]["effort"]["fallback"] = "low"
    with pytest.raises(MatrixError) as exc:
        parse(bad)
    paths = {p for p, _ in exc.value.errors}
    assert {"rows/1/id", "rows/0/profile", "profiles/glm-5.2/effort/fallback"} <= paths


def test_profile_resolution_is_data(data):
    m = parse(data)
    eff = m.profiles["glm-5.2"].effort
    assert [eff.resolve(v) for v in (None, "max", "high", "low", "medium", "???")] == ["max", "max", "high", "max", "max", "max"]
    assert eff.line_for("high") == "Reasoning Effort: High"
    glm53 = copy.deepcopy(data)
    glm53["profiles"]["glm-5.3"] = copy.deepcopy(data["profiles"]["glm-5.2"])
    glm53["profiles"]["glm-5.3"]["effort"]["levels"] = {"max": "Max", "high": "High", "low": "Low"}
    eff53 = parse(glm53).profiles["glm-5.3"].effort
    assert eff53.resolve("low") == "low" and eff53.resolve("medium") == "max"
    assert eff53.lowered_levels == ["high", "low"]


def test_invalid_matrix_stops_pytest_before_launch(tmp_path, data):
    bad = copy.deepcopy(data)
    bad["rows"][0]["hardware"] = "tpu"
    bad["rows"][0]["features"] = {"teleport": {"status": "inferred", "basis": "x"}}
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(bad))
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "pytest", "suites", "-m", "cpu", "--matrix", str(path),
                           "--results=" + str(results), "-p", "no:cacheprovider"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out  # pytest usage error: nothing collected, nothing launched
    assert "rows/0/hardware" in out and "rows/0/features" in out
    assert not results.exists(), "an invalid matrix must stop the run before results or engines exist"


def test_unreadable_matrix(tmp_path):
    with pytest.raises(MatrixError, match="cannot read"):
        load(tmp_path / "missing.yaml")
    p = tmp_path / "broken.yaml"
    p.write_text("rows: [\n")
    with pytest.raises(MatrixError, match="not valid YAML"):
        load(p)


# ---- the layered form --------------------------------------------------------------------------------
def test_flat_document_parses_to_the_same_rows(flat):
    assert parse(flat).rows == load().rows


def test_layer_errors_name_their_place_in_the_layered_file(data):
    bad = copy.deepcopy(data)
    recipe = bad["rows"][7]["recipe"]
    recipe = recipe if isinstance(recipe, str) else recipe[0]
    bad["recipes"][recipe]["launch"] = {"args": "not a list"}
    bad["rows"][8]["recipe"] = "no-such-recipe"
    bad["rows"][9]["model"] = "glm-9"
    bad["rows"][10]["features"] = {"tool_calls": "no.such.claim"}
    bad["rows"][11]["description"] = "see {no-such-note}"
    with pytest.raises(MatrixError) as exc:
        parse(bad)
    errs = dict(exc.value.errors)
    assert f"recipes/{recipe}/launch/args" in errs
    assert "unknown recipe 'no-such-recipe'" in errs["rows/8/recipe"]
    assert "unknown model 'glm-9'" in errs["rows/9/model"]
    assert "unknown claim 'no.such.claim'" in errs["rows/10/features/tool_calls"]
    assert "unknown note 'no-such-note'" in errs["rows/11/description"]


def test_a_field_no_layer_gives_is_reported_at_the_row_with_its_layers(data):
    bad = copy.deepcopy(data)
    row = bad["rows"][6]
    del row["image"]
    with pytest.raises(MatrixError) as exc:
        parse(bad)
    (path, msg), = [(p, m) for p, m in exc.value.errors if p == "rows/6"]
    assert "'image' is a required property" in msg and "after merging" in msg and "recipes/" in msg


def test_recipe_extends_cycles_and_unknown_bases_are_reported(data):
    bad = copy.deepcopy(data)
    child = next(n for n, r in bad["recipes"].items() if "extends" in r)
    base = bad["recipes"][child]["extends"]
    bad["recipes"][base]["extends"] = child
    with pytest.raises(MatrixError) as exc:
        parse(bad)
    assert any(p.endswith("/extends") and "cycle" in m for p, m in exc.value.errors)


def _mini(rows, recipes=None, defaults=None, claims=None, models=None):
    data = read_document(DEFAULT_MATRIX)
    return {"schema": 1, "features": data["features"], "profiles": data["profiles"], "defaults": defaults or {},
            "models": models or {"m": {"checkpoint": "org/M-FP8", "profile": "glm-5.2"}}, "claims": claims or {},
            "recipes": recipes or {}, "rows": [{"features": {}, **r} for r in rows]}


def test_merge_rule_mappings_merge_later_wins_lists_replaced():
    defaults = {"vendors": {"nvidia": ["h200"]},
                "containers": {"vendors": {"nvidia": {"launch": {"ipc": "host", "volumes": ["a:/a"], "env": {"A": "1"}}}}}}
    recipes = {"base": {"engine": "vllm", "source": {"seed": "s"}, "expect": {},
                        "launch": {"launcher": "container", "args": ["{model}", "--served-model-name", "{served_model}"],
                                   "env": {"B": "2"}, "volumes": ["b:/b"]}},
               "variant": {"extends": "base", "launch": {"env": {"A": "9"}}}}
    rows = [{"id": "r", "recipe": "variant", "model": "m", "image": "i", "hardware": "h200", "served_model": "srv"}]
    row = parse(_mini(rows, recipes, defaults)).row("r")
    assert row.launch.env == {"A": "9", "B": "2"}            # mappings merged, the later layer wins
    assert row.launch.volumes == ["b:/b"]                     # lists replaced whole
    assert row.launch.ipc == "host"                           # the vendor's container default
    assert row.launch.args == ["org/M-FP8", "--served-model-name", "srv"]
    assert (row.model, row.profile.name) == ("org/M-FP8", "glm-5.2")


def test_container_defaults_do_not_reach_other_launchers():
    defaults = {"vendors": {"nvidia": ["h200"]}, "containers": {"vendors": {"nvidia": {"launch": {"ipc": "host"}}}}}
    rows = [{"id": "r", "engine": "vllm", "model": "m", "image": "i", "hardware": "h200", "source": {"seed": "s"},
             "expect": {}, "launch": {"launcher": "attach", "args": ["x"]}}]
    assert parse(_mini(rows, defaults=defaults)).row("r").launch.ipc is None


def test_launch_from_command_and_claims_by_name():
    command = "export A=1\nB=2 vllm serve org/M-FP8 \\\n  --tp 8 \\\n  --cfg '{\"x\": 1}'"
    rows = [{"id": "r", "engine": "vllm", "model": "m", "image": "i", "hardware": "h200", "expect": {},
             "source": {"seed": "s", "command": command.split("\n")},
             "launch": {"launcher": "container", "from_command": ["args", "env"]},
             "features": {"tool_calls": "c"}}]
    claims = {"c": {"status": "inferred", "kind": "derived", "basis": "seed says so"}}
    row = parse(_mini(rows, claims=claims)).row("r")
    assert row.source["command"] == command
    assert row.launch.args == ["org/M-FP8", "--tp", "8", "--cfg", '{"x": 1}']
    assert row.launch.env == {"A": "1", "B": "2"} and "from_command" not in row.launch.to_mapping()
    assert (row.declared_cell("tool_calls").status, row.declared_cell("tool_calls").kind) == ("inferred", "derived")


def test_show_prints_a_resolved_row_whole_and_list_names_recipes():
    from glmverify.matrix.views import UnknownRow, listing, show
    m = load()
    row = next(r for r in m.rows if r.launcher == "container" and r.hardware != "cpu")
    text = show(m, row.id)
    shown = yaml.safe_load(text)
    assert shown["launch"]["args"] == row.launch.args and shown["profile"]["name"] == row.profile.name
    assert "{model}" not in text and "recipe" not in shown
    with pytest.raises(UnknownRow) as exc:
        show(m, "no-such-row")
    assert row.id in str(exc.value)
    lines = listing(m, m.recipe_of).splitlines()
    assert len(lines) == len(m.rows) + 1 and m.recipe_of[row.id] in next(l for l in lines if l.startswith(row.id + " "))


def test_cli_matrix_show_and_list():
    from glmverify.cli import main
    import contextlib
    import io
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(["matrix", "show", "vllm-glm52-fp8-h20"]) == 0
        assert main(["matrix", "show", "no-such-row"]) == 2
        assert main(["matrix", "list"]) == 0
    shown = yaml.safe_load(out.getvalue().split("\nrow ")[0])
    assert shown["id"] == "vllm-glm52-fp8-h20" and shown["hardware"] == "h20"
    assert "no row 'no-such-row'" in err.getvalue() and "vllm-glm52-fp8-h200" in err.getvalue()
    assert "vllm-fp8-standard" in out.getvalue()


def test_a_profile_without_effort_levels_makes_the_effort_cell_unsupported():
    data = _mini([{"id": "r", "engine": "vllm", "model": "m4", "image": "i", "hardware": "h200", "expect": {},
                   "source": {"seed": "s"}, "launch": {"launcher": "attach", "args": ["x"]}}],
                 models={"m4": {"checkpoint": "org/GLM-4.x", "profile": "flat"}})
    data["profiles"]["flat"] = {"thinking_variable": "enable_thinking",
                                "effort": {"levels": {}, "basis": "this family has no effort levels"}}
    m = parse(copy.deepcopy(data))
    eff = m.profiles["flat"].effort
    assert not eff.has_levels and eff.resolve(None) is None and eff.resolve("high") is None and eff.lowered_levels == []
    cell = m.row("r").declared_cell("effort_levels")
    assert (cell.status, cell.basis) == ("unsupported", "this family has no effort levels")
    assert not m.row("r").serves("effort_levels")
    data["rows"][0]["features"] = {"effort_levels": {"status": "not_run", "basis": "x"}}
    with pytest.raises(MatrixError) as exc:
        parse(data)
    assert any(p == "rows/0/features/effort_levels" and "no effort levels" in msg for p, msg in exc.value.errors)
    del data["profiles"]["flat"]["effort"]["basis"]
    with pytest.raises(MatrixError) as exc:
        parse(data)
    assert any(p == "profiles/flat/effort" and "basis" in msg for p, msg in exc.value.errors)


def test_profiles_with_levels_keep_their_order_most_effort_first():
    eff = load().profiles["glm-5.2"].effort
    assert eff.has_levels and list(eff.levels) == ["max", "high"] and eff.default == "max"


# ---- the seeds' text, line for line ------------------------------------------------------------------------
# test_plan's drift check compares a recipe's seed text with its guide modulo whitespace, so it passes
# a reflowed command. Written as literal blocks, the commands can be held to more: the guide's own
# lines, in order, with only the indentation of the guide's code block taken off.
SEEDS = REPO.parent / "shared" / "seeds"
SEED_TEXT = {p.name: p.read_text() for p in SEEDS.glob("*.txt")} if SEEDS.is_dir() else {}
needs_seeds = pytest.mark.requires(None if SEED_TEXT else f"seed documents not found at {SEEDS}")


def _dedent(lines: list[str]) -> list[str]:
    indent = min((len(l) - len(l.lstrip()) for l in lines if l.strip()), default=0)
    return [l[indent:] if l.strip() else "" for l in lines]


def is_seed_lines(text: str, seed: str) -> bool:
    """``text`` is a run of consecutive lines of ``seed``, up to the run's common indentation; its
    last line may stop short of the seed's (the scraped guides run a command into the next sentence)."""
    want, lines = _dedent(text.split("\n")), seed.split("\n")
    n = len(want)
    for i in range(len(lines) - n + 1):
        if not lines[i].strip().startswith(want[0].strip()):
            continue
        run = _dedent(lines[i:i + n])
        if run[:-1] == want[:-1] and run[-1].startswith(want[-1]) and want[-1].strip():
            return True
    return False


@needs_seeds
def test_seed_commands_are_the_guides_lines():
    drifted = sorted({f"{row.id}: source.{key}" for row in load().rows for key in ("command", "docker")
                      if row.source.get(key) and not is_seed_lines(row.source[key], SEED_TEXT[row.source["seed"]])})
    assert not drifted, "seed text that is not the guide's lines verbatim:\n" + "\n".join(drifted)


def test_seed_lines_catch_what_whitespace_normalising_passes():
    seed = "Run:\n\n    vllm serve org/model \\\n      --tp 8 \\\n      --flag x\n\nThen query it."
    assert is_seed_lines("vllm serve org/model \\\n  --tp 8 \\\n  --flag x", seed)
    assert is_seed_lines("  --tp 8 \\\n  --flag x", seed)               # a tail of the block
    reflowed = "vllm serve org/model \\\n  --tp 8 \\ --flag x"             # same words, joined lines
    assert " ".join(reflowed.split()) in " ".join(seed.split())          # the old check passes it
    assert not is_seed_lines(reflowed, seed)
    assert not is_seed_lines("vllm serve org/model \\\n  --tp 4 \\\n  --flag x", seed)
    assert not is_seed_lines("vllm serve org/model \\\n  --flag x", seed)  # a line left out
    assert is_seed_lines("Then query", seed) and not is_seed_lines("Then ask", seed)  # a line cut short


def test_cpu_sglang_rows_run_one_openmp_thread():
    """The CPU SGLang rows share two cores with the vLLM rows in make verify and make test. Without AMX,
    SGLang binds no cores and torch starts a thread per core, so each of its OpenMP barriers waits
    for a core a vLLM worker holds (decode fell from ~500 to 10-100 tokens/s for as long as the vLLM
    rows ran, and CI's make test ran out of time). One thread each keeps them off each other."""
    rows = [r for r in load().rows if r.engine == "sglang" and r.hardware == "cpu"]
    assert {r.id for r in rows} >= {"reference-sglang", "reference-sglang-container"}
    assert {r.id: r.launch.env.get("OMP_NUM_THREADS") for r in rows} == {r.id: "1" for r in rows}
