"""matrix.yaml reads without scrolling: the style rules of its header, checked on the text.

* No line is over 120 columns, except the seeds' own text: the lines of a ``source.command`` or
  ``source.docker`` block scalar are the guide's, verbatim (the seed-drift test compares them with
  the guide), so they stay as long as the guide wrote them.
* Block style: no flow collection (``[a, b]``, ``{k: v}``) except an empty one, which block style
  cannot write.
* A seed's command or docker run is a literal block (``|``), so it reads as the guide prints it.

The checks read the YAML's node tree (``yaml.compose``), which keeps each value's style and lines.
Each rule is also shown failing on a planted defect.
"""
from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MATRIX = REPO / "matrix.yaml"
MAX_COLUMNS = 120
SEED_TEXT_KEYS = ("command", "docker")


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
