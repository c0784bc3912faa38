"""matrix.yaml reads without scrolling: the style rules of its header, checked on the text.

* No line is over 120 columns, except the seeds' own text: the lines of a ``source.command`` or
  ``source.docker`` block scalar are the guide's, verbatim (the seed-drift test compares them with
  the guide), so they stay as long as the guide wrote them.
* Block style: no flow collection (``[a, b]``, ``{k: v}``) except an empty one, which block style
  cannot write.
* A seed's command or docker run is a literal block (``|``), so it reads as the guide prints it.
* Names are chosen, not generated: no claim, note or recipe name ends in a counter (``-2``), a
  claim's name starts with its guide (``sglang.mtp.low-latency``), and every claim, note and recipe
  is cited somewhere (an entry nobody cites is text nobody reads).

The checks read the YAML's node tree (``yaml.compose``), which keeps each value's style and lines.
Each rule is also shown failing on a planted defect.
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from glmverify.matrix import read_document

REPO = Path(__file__).resolve().parents[2]
MATRIX = REPO / "matrix.yaml"
MAX_COLUMNS = 120
SEED_TEXT_KEYS = ("command", "docker")
#: a claim's name starts with its guide: the reference rows or one of the five seeds
CLAIM_GUIDES = ("ref", "vllm", "sglang", "glm4x", "ascend", "sizing")
NOTE = re.compile(r"\{([a-z0-9][a-z0-9.-]*)\}")


def _walk(node, path=(), seen=None):
    """(path, node) for every node under ``node``, each node once (anchors share nodes)."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    yield path, node
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _walk(value, path + (key.value,), seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _walk(item, path + (i,), seen)


def _is_seed_text(path) -> bool:
    return len(path) >= 2 and path[-2] == "source" and path[-1] in SEED_TEXT_KEYS


def seed_text_lines(text: str) -> set[int]:
    """1-based numbers of the lines that hold a seed's text (a source.command or source.docker)."""
    lines: set[int] = set()
    for path, node in _walk(yaml.compose(text, Loader=yaml.SafeLoader)):
        if isinstance(node, yaml.ScalarNode) and _is_seed_text(path):
            lines.update(range(node.start_mark.line + 1, node.end_mark.line + 2))
    return lines


def long_lines(text: str) -> list[str]:
    """``line N: C columns`` for every line over MAX_COLUMNS that is not a seed's text."""
    exempt = seed_text_lines(text)
    return [f"line {n}: {len(line)} columns" for n, line in enumerate(text.split("\n"), 1)
            if len(line) > MAX_COLUMNS and n not in exempt]


def flow_collections(text: str) -> list[str]:
    """``line N: /path`` for every non-empty flow-style mapping or sequence."""
    return [f"line {node.start_mark.line + 1}: /{'/'.join(map(str, path))}"
            for path, node in _walk(yaml.compose(text, Loader=yaml.SafeLoader))
            if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.flow_style and node.value]


def unliteral_seed_text(text: str) -> list[str]:
    """``line N: /path`` for every seed command or docker run not written as a literal block."""
    return [f"line {node.start_mark.line + 1}: /{'/'.join(map(str, path))}"
            for path, node in _walk(yaml.compose(text, Loader=yaml.SafeLoader))
            if _is_seed_text(path) and not (isinstance(node, yaml.ScalarNode) and node.style == "|")]


def badly_named(data: dict) -> list[str]:
    """Claim, note and recipe names that end in a counter, or claims without their guide's prefix."""
    out = [f"{section}/{name}" for section in ("claims", "notes", "recipes")
           for name in data.get(section) or {} if re.search(r"-\d+$", name)]
    return out + [f"claims/{name}" for name in data.get("claims") or {} if name.split(".")[0] not in CLAIM_GUIDES]


def uncited(data: dict) -> list[str]:
    """Claims no cell names, notes no description cites, recipes no row or recipe uses."""
    layers = [*(data.get("recipes") or {}).values(), *(data.get("rows") or [])]
    claims = {c for layer in layers for c in (layer.get("features") or {}).values() if isinstance(c, str)}
    notes = {n for layer in layers for n in NOTE.findall(layer.get("description") or "")}
    recipes = {layer["extends"] for layer in layers if "extends" in layer}
    for row in data.get("rows") or []:
        names = row.get("recipe") or []
        recipes.update([names] if isinstance(names, str) else names)
    return [f"{section}/{name}" for section, cited in (("claims", claims), ("notes", notes), ("recipes", recipes))
            for name in data.get(section) or {} if name not in cited]


# ---- matrix.yaml --------------------------------------------------------------------------------------------
def test_no_line_over_120_columns_but_the_seeds_text():
    problems = long_lines(MATRIX.read_text())
    assert not problems, "matrix.yaml lines over 120 columns (fold the sentence with >-):\n" + "\n".join(problems)


def test_block_style_throughout():
    problems = flow_collections(MATRIX.read_text())
    assert not problems, "flow-style collections in matrix.yaml (write them in block style):\n" + "\n".join(problems)


def test_seed_commands_are_literal_blocks():
    problems = unliteral_seed_text(MATRIX.read_text())
    assert not problems, "seed text not written as a literal block (|):\n" + "\n".join(problems)


def test_the_exemption_covers_real_seed_text():
    """The exemption is not idle: matrix.yaml does hold seed lines over 120 columns (the guides'
    long docker runs and JSON configs), and no other line."""
    text = MATRIX.read_text()
    exempt = seed_text_lines(text)
    long = [n for n, line in enumerate(text.split("\n"), 1) if len(line) > MAX_COLUMNS]
    assert long and set(long) <= exempt


def test_names_are_chosen_not_generated():
    problems = badly_named(read_document(MATRIX))
    assert not problems, "generated-looking names (say what the entry is):\n" + "\n".join(problems)


def test_every_claim_note_and_recipe_is_cited():
    problems = uncited(read_document(MATRIX))
    assert not problems, "entries nothing cites:\n" + "\n".join(problems)


# ---- planted defects ------------------------------------------------------------------------------------------
SAMPLE = """\
recipes:
  example:
    description: >-
      a sentence folded over
      two lines
    source:
      command: |-
        vllm serve model \\
          --flag value
    launch:
      args:
        - --tp
        - "8"
      env: {}
"""
LONG_WORDS = " ".join(["word"] * 30)  # 149 characters


def test_the_sample_passes():
    assert long_lines(SAMPLE) == [] and flow_collections(SAMPLE) == [] and unliteral_seed_text(SAMPLE) == []


def test_a_planted_long_line_fails():
    planted = SAMPLE.replace("two lines", LONG_WORDS)
    assert long_lines(planted) == [f"line 5: {6 + len(LONG_WORDS)} columns"]


def test_a_long_line_inside_the_seeds_text_is_allowed():
    planted = SAMPLE.replace("  --flag value", "  --flag value " + LONG_WORDS)
    assert len(max(planted.split("\n"), key=len)) > MAX_COLUMNS
    assert long_lines(planted) == []


def test_a_long_line_in_another_block_scalar_fails():
    planted = SAMPLE.replace("    launch:", f"    errata:\n      - |-\n        {LONG_WORDS}\n    launch:")
    assert [p.split(":")[0] for p in long_lines(planted)] == ["line 12"]


def test_a_planted_flow_collection_fails():
    planted = SAMPLE.replace("""      args:
        - --tp
        - "8"
""", """      args: [--tp, "8"]
""")
    assert flow_collections(planted) == ["line 11: /recipes/example/launch/args"]


def test_a_planted_quoted_seed_command_fails():
    planted = SAMPLE.replace("""      command: |-
        vllm serve model \\
          --flag value
""", """      command: "vllm serve model --flag value"
""")
    assert unliteral_seed_text(planted) == ["line 7: /recipes/example/source/command"]


def test_planted_generated_names_fail():
    data = read_document(MATRIX)
    name = next(iter(data["claims"]))
    data["claims"][f"{name}-2"] = data["claims"][name]
    data["notes"]["note-3"] = "a sentence"
    data["claims"]["mtp.balanced"] = data["claims"][name]
    assert badly_named(data) == [f"claims/{name}-2", "notes/note-3", "claims/mtp.balanced"]


def test_planted_uncited_entries_fail():
    data = read_document(MATRIX)
    data["claims"]["vllm.mtp.nowhere"] = {"status": "not_run", "basis": "cited by no cell"}
    data["notes"]["nowhere"] = "cited by no description"
    data["recipes"]["vllm-nowhere"] = {"extends": "vllm-guide"}
    assert uncited(data) == ["claims/vllm.mtp.nowhere", "notes/nowhere", "recipes/vllm-nowhere"]
    # a recipe cited only through another's extends counts as cited
    data["rows"][-1] = {**data["rows"][-1], "recipe": "vllm-nowhere"}
    assert "recipes/vllm-nowhere" not in uncited(data)
