"""Reports from a matrix.json document: matrix.md, junit.xml, matrix.html."""
from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from glmverify.report import (accept_length, effort_levels, effort_ratio, effort_ratios, key_figures, md_code, md_text,
                              reasoning_tokens, render_figures, render_html, render_junit, render_markdown, write_reports)

CANARY = "<script>window.__glm_canary=1</script>"
ENGINE = {"engine_version": "0.32.0", "image": "vllm/vllm-openai:glm52", "server_args": ["--tp", "8"],
          "max_model_len": 1048576, "served_model": "glm-5.2-fp8", "started_at": "2025-01-01T00:00:00Z",
          "ready_at": "2025-01-01T00:20:00Z"}


def _cell(row, hw, feature, status, checks=(), evidence=None, basis=None, engine="vllm"):
    return {"row": row, "engine": engine, "image": f"{engine}/{row}:img", "hardware": hw, "feature": feature,
            "status": status, "declared": "inferred" if status == "inferred" else "not_run",
            "basis": basis or f"{status}: basis of {row}/{feature}", "checks": list(checks),
            "evidence": {"engine": ENGINE, "checks": evidence} if evidence else {}}


def synthetic_doc() -> dict:
    """Every status, every key figure, a canary in a failed check's evidence and detail."""
    p = {"outcome": "passed", "detail": ""}
    cells = [
        _cell("vllm-h200", "h200", "mtp_accept_length", "verified", [dict(p, id="test_accept_length")],
              {"test_accept_length": {"accept_length": 3.42, "per_position": [0.9, 0.7, 0.45, 0.25, 0.12]}}),
        _cell("vllm-h200", "h200", "accuracy_smoke", "verified", [dict(p, id="test_gsm8k")],
              {"test_gsm8k": {"accuracy": 0.953, "wilson_lower": 0.871, "n": 64, "threshold": 0.9}}),
        _cell("vllm-h200", "h200", "context_1m", "verified", [dict(p, id="test_needles")],
              {"test_needles": {"context_reached": 1048576,
                                "needles": [{"depth": d, "tokens": t, "found": not (t == 1048576 and d == 0.5)}
                                            for t in (131072, 524288, 1048576) for d in (0.1, 0.5, 0.9)]}}),
        _cell("vllm-h200", "h200", "effort_levels", "verified", [dict(p, id="test_effort_ratio")],
              {"test_effort_ratio": {"ratio": 0.61, "reasoning_tokens": {"max": [900, 1000, 1100], "high": [500, 600, 700]}}}),
        _cell("vllm-h200", "h200", "tool_calls", "failed",
              [{"id": "test_tool_call[weather]", "outcome": "failed", "detail": f"AssertionError: got {CANARY} \x1b[31m"},
               dict(p, id="test_tool_call[none]")],
              {"test_tool_call[weather]": {"response": f"I will call {CANARY} <img src=x onerror=alert(1)>"}}),
        _cell("sglang-mi300x", "mi300x", "tool_calls", "inferred", basis="recipe in the SGLang guide | not run",
              engine="sglang"),
        _cell("sglang-mi300x", "mi300x", "mtp_accept_length", "unsupported", basis="no MTP head on ROCm", engine="sglang"),
        _cell("sglang-mi300x", "mi300x", "context_1m", "not_run", basis="no declaration in matrix.yaml", engine="sglang"),
        _cell("sglang-mi300x", "mi300x", "accuracy_smoke", "inconclusive",
              [{"id": "test_gsm8k[think]", "outcome": "inconclusive", "detail": "INCONCLUSIVE: budget spent"}],
              {"test_gsm8k[think]": {"decisions": [{"rule": "accuracy[think]", "status": "inconclusive", "n": 1319,
                                                    "estimate": 0.9, "interval": [0.87, 0.93], "alpha": 0.0017}]}},
              engine="sglang"),
    ]
    return {"schema": 1, "run": {"id": "20250101T000000Z-abc123", "started": "2025-01-01T00:00:00Z",
                                 "finished": "2025-01-01T01:00:00Z", "launches": {"vllm-h200": 1},
                                 "matrix": {"path": "matrix.yaml", "sha256": "ab" * 32}}, "cells": cells}


# ---- key figures ----------------------------------------------------------------------------------------
def test_key_figures_of_each_feature():
    cells = {c["feature"]: c for c in synthetic_doc()["cells"] if c["row"] == "vllm-h200"}
    assert key_figures(cells["mtp_accept_length"]) == ["accept 3.42 (5 drafts)"]
    assert key_figures(cells["accuracy_smoke"]) == ["acc 95.3%", "Wilson ≥ 87.1%, n=64, need 90.0%"]
    assert key_figures(cells["context_1m"]) == ["1M tokens reached", "needles 8/9 found"]
    assert key_figures(cells["effort_levels"]) == ["High/Max 0.61"]
    assert key_figures(cells["tool_calls"]) == []


def test_cross_row_speed_decisions_are_key_figures():
    """The speed-up against the twin and the regime comparisons show on the cell, decided or not."""
    c = _cell("reference-ngram", "cpu", "serving_performance", "verified", evidence={})
    c["evidence"]["mtp_speedup"] = {"comparison": "reference-ngram-vs-reference-nospec", "status": "verified", "decision": {
        "rule": "perf[mtp_speedup:c1]", "estimate": 0.42, "interval": [0.39, 0.45], "n": 3, "alpha": 0.01,
        "status": "verified"}}
    c["evidence"]["regimes"] = [{"comparison": "tpot:a-vs-b", "status": "not comparable", "reason": "no shared level"}]
    assert key_figures(c) == ["reference-ngram-vs-reference-nospec: perf[mtp_speedup:c1]: 0.42 [0.39, 0.45] n=3 "
                              "α=0.01 → verified", "tpot:a-vs-b: not comparable"]


def test_key_figures_are_derived_when_only_raw_data_exists():
    c = _cell("r", "cpu", "mtp_accept_length", "verified", evidence={"t": {"per_position": [0.5, 0.25]}})
    assert accept_length(c) == pytest.approx(1.75)
    e = _cell("r", "cpu", "effort_levels", "verified", evidence={"t": {"reasoning_tokens": {"Max": [100, 300], "High": [100]}}})
    assert effort_ratio(e) == pytest.approx(0.5)
    junk = _cell("r", "cpu", "accuracy_smoke", "verified", evidence={"t": {"accuracy": "high", "needles": "x"}})
    assert key_figures(junk) == []  # tolerated, not shown



def test_effort_figures_follow_the_recorded_levels_not_level_names():
    """Three levels, most effort first: each lowered level against the first; the default key
    stands for the first level; ``ratio`` (the check's own estimate) wins for the first lowered level."""
    ev = {"levels": ["max", "high", "low"], "ratio": 0.6,
          "reasoning_tokens": {"default": [1000, 1000], "high": [500, 700], "low": [100, 300, None], "medium": [990]}}
    c = _cell("r", "cpu", "effort_levels", "verified", evidence={"t": ev})
    assert effort_levels(c) == ["max", "high", "low"]
    assert list(reasoning_tokens(c)) == ["max", "high", "low", "medium"]  # the fall-through value is plotted too
    assert effort_ratios(c) == pytest.approx({"high": 0.6, "low": 0.2})
    assert effort_ratio(c) == pytest.approx(0.6)
    assert key_figures(c) == ["High/Max 0.60", "Low/Max 0.20"]
    # other level names are only data: a profile's own words appear, nothing is assumed
    renamed = _cell("r", "cpu", "effort_levels", "verified",
                    evidence={"t": {"levels": ["deep", "quick"], "reasoning_tokens": {"default": [400], "quick": [100]}}})
    assert key_figures(renamed) == ["Quick/Deep 0.25"]


def test_effort_figures_of_results_without_levels():
    """Older results: the order of the reasoning-token keys, ``default`` first as the suite records it."""
    old = _cell("r", "cpu", "effort_levels", "verified",
                evidence={"t": {"ratio": 0.55, "reasoning_tokens": {"default": [900, 1000, None], "high": [500, 400]}}})
    assert effort_levels(old) == ["default", "high"] and key_figures(old) == ["High/Default 0.55"]
    tokens_only = _cell("r", "cpu", "effort_levels", "verified",
                        evidence={"t": {"reasoning_tokens": {"default": [200, 200], "high": [100]}}})
    assert effort_ratio(tokens_only) == pytest.approx(0.5)
    ratio_only = _cell("r", "cpu", "effort_levels", "verified", evidence={"t": {"ratio": 0.7}})
    assert effort_ratio(ratio_only) == pytest.approx(0.7) and key_figures(ratio_only) == ["Lowered/Default 0.70"]
    assert key_figures(_cell("r", "cpu", "effort_levels", "verified", evidence={"t": {"levels": "max"}})) == []


def test_figure_modules_name_no_effort_level():
    from glmverify.report import figures, plots

    for mod in (figures, plots):
        code = Path(mod.__file__).read_text()
        assert not re.search(r"[\"'](high|max|High|Max)[\"']", code), mod.__name__


def test_the_stylesheet_is_package_data():
    from glmverify.report import html as html_module

    css = (Path(html_module.__file__).parent / "matrix.css").read_text()
    assert html_module.CSS == css and ".st-verified" in css
    assert f"<style>{css}</style>" in render_html(synthetic_doc(), figures=[])


def test_write_reports_shows_the_signoff_state_it_is_given(tmp_path):
    rec = {"signed_by": "Jane", "signed_at": "2025-01-02T00:00:00Z", "matrix_json": {"sha256": "f" * 64}}
    write_reports(tmp_path, synthetic_doc(), {"ok": True, "record": rec, "message": ""})
    assert "Signed off by **Jane**" in (tmp_path / "matrix.md").read_text()
    write_reports(tmp_path, synthetic_doc())
    assert "Not signed off" in (tmp_path / "matrix.md").read_text()

# ---- markdown -----------------------------------------------------------------------------------------
def _table_lines(md: str) -> list[str]:
    return [ln for ln in md.splitlines() if ln.startswith("|")]


def test_markdown_table_and_escaping():
    md = render_markdown(synthetic_doc())
    assert "# GLM-5.2 verification matrix" in md
    for s in ("✅ verified", "❌ failed", "◐ inferred", "— unsupported", "· not_run"):
        assert s in md
    assert "accept 3.42" in md and "High/Max 0.61" in md
    # model output never reaches Markdown as HTML
    assert not re.search(r"(?<!\\)<", md)  # no '<' that is not backslash-escaped: no HTML at all
    assert "\\<script\\>" in md
    # every table line has the same number of (unescaped) columns: '|' in text does not split a row
    lines = _table_lines(md)
    widths = {len(re.findall(r"(?<!\\)\|", ln)) for ln in lines}
    assert len(widths) == 1, lines
    assert "## Failures" in md and "test_tool_call[weather]" in md
    assert "Not signed off" in md


def test_markdown_helpers():
    assert md_text("a|b\n<b>x</b> *y*") == "a\\|b \\<b\\>x\\</b\\> \\*y\\*"
    assert md_code("x`y") == "`` x`y ``"
    assert md_code("a|b", table=True) == "`a\\|b`"


def test_markdown_shows_signoff_state():
    rec = {"signed_by": "Jane <jane@example.com>", "signed_at": "2025-01-02T00:00:00Z", "matrix_json": {"sha256": "f" * 64}}
    ok = render_markdown(synthetic_doc(), {"ok": True, "record": rec, "message": ""})
    assert "Signed off by **Jane \\<jane@example.com\\>**" in ok and "matches this matrix.json" in ok
    bad = render_markdown(synthetic_doc(), {"ok": False, "record": rec, "message": "changed"})
    assert "DOES NOT MATCH" in bad


# ---- junit --------------------------------------------------------------------------------------------
def test_junit_is_parseable_with_one_testcase_per_check_grouped_per_cell():
    doc = synthetic_doc()
    root = ET.fromstring(render_junit(doc).encode())
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == len(doc["cells"])
    tools = next(s for s in suites if s.get("name") == "vllm-h200/tool_calls")
    cases = tools.findall("testcase")
    assert [c.get("name") for c in cases] == ["test_tool_call[weather]", "test_tool_call[none]"]
    assert cases[0].find("failure") is not None and cases[1].find("failure") is None
    assert CANARY in cases[0].find("failure").text  # escaped by the XML writer, intact once parsed
    assert tools.get("failures") == "1" and tools.get("tests") == "2"
    props = {p.get("name"): p.get("value") for p in tools.find("properties")}
    assert props["status"] == "failed"
    # declared cells appear as one skipped case with their basis
    inferred = next(s for s in suites if s.get("name") == "sglang-mi300x/tool_calls")
    [case] = inferred.findall("testcase")
    assert case.get("name") == "declared: inferred" and "SGLang guide" in case.find("skipped").get("message")
    assert root.get("failures") == "1"
    assert int(root.get("tests")) == sum(max(1, len(c["checks"])) for c in doc["cells"])


# ---- html ---------------------------------------------------------------------------------------------
class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.script_text: list[str] = []
        self._in_script = False
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_script = self._in_style = False

    def handle_data(self, data):
        if self._in_script:
            self.script_text.append(data)
        if self._in_style:
            self.style += data


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(synthetic_doc())


def test_html_has_every_status_and_key_figure(page):
    for s in ("verified", "failed", "inconclusive", "inferred", "unsupported", "not_run"):
        assert f'class="cell st-{s}"' in page
    # a statistical cell shows its decision: rule, estimate, interval, n and alpha
    assert "accuracy[think]: 0.9 [0.87, 0.93] n=1319 α=0.0017 → inconclusive" in page
    for fig in ("accept 3.42", "acc 95.3%", "Wilson ≥ 87.1%", "1M tokens reached", "High/Max 0.61"):
        assert fig in page
    # grouped by engine and hardware, in order of appearance
    assert page.index("vllm · h200") < page.index("sglang · mi300x")
    assert "<details>" in page and "test_tool_call[weather]" in page


def test_html_escapes_model_output(page):
    p = _Tags()
    p.feed(page)
    assert not any(t == "script" for t, _ in p.tags)
    assert not any(t == "img" and a.get("src") == "x" for t, a in p.tags)
    assert "&lt;script&gt;window.__glm_canary=1&lt;/script&gt;" in page
    assert "__glm_canary=1</script>" not in page
    assert "\x1b" not in page


def test_html_is_self_contained_with_a_strict_csp(page):
    p = _Tags()
    p.feed(page)
    csp = next(a["content"] for t, a in p.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "script-src 'none'" in csp and "default-src 'none'" in csp and "img-src data:" in csp
    digest = base64.b64encode(hashlib.sha256(p.style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in csp  # the page's own stylesheet, nothing else
    assert not any(t == "link" for t, _ in p.tags)
    for t, a in p.tags:
        for attr in ("src", "href"):
            v = a.get(attr)
            if v is not None:
                assert v.startswith(("data:image/png;base64,", "#")), (t, attr, v[:60])
        assert "style" not in a, t  # inline style attributes would need 'unsafe-inline'
    assert not re.search(r"url\(|@import|https?://", p.style)


def test_html_figures_are_embedded_only_when_data_exists(page):
    imgs = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert [a for a, _ in imgs] == ["Accept length per draft position", "Reasoning tokens per effort level",
                                    "Needle depth by context length"]
    for _, b64 in imgs:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    doc = synthetic_doc()
    for c in doc["cells"]:
        c["evidence"] = {}
    assert "<img" not in render_html(doc) and render_figures(doc) == []


def test_bad_figure_data_does_not_break_the_page():
    doc = synthetic_doc()
    doc["cells"][0]["evidence"]["checks"]["test_accept_length"]["per_position"] = ["a", None, {}]
    doc["cells"][3]["evidence"]["checks"]["test_effort_ratio"]["reasoning_tokens"] = {"max": "many"}
    html_text = render_html(doc)
    assert html_text.count("<img") == 1  # only the needles figure has usable data


def test_html_drilldown_shows_history_and_unknown_keys():
    doc = synthetic_doc()
    c = doc["cells"][4]
    c["history"] = [{"run": "old-run", "status": "verified", "time": "2024-12-01T00:00:00Z", "basis": "older pass",
                     "checks": [{"id": "test_tool_call[weather]", "outcome": "passed", "detail": ""}]}]
    c["parser"] = {"engine": "vllm", "parser": "glm47", "basis": "parser conformance <b>"}
    doc["warnings"] = ["row x/<y>: not in matrix.yaml"]
    doc["unknown"] = [{"row": "x", "feature": "<y>", "status": "verified", "reason": "not in matrix.yaml"}]
    page = render_html(doc)
    assert "1 older result(s)" in page and "old-run" in page
    assert "parser conformance &lt;b&gt;" in page
    assert "row x/&lt;y&gt;: not in matrix.yaml" in page


def test_write_reports_writes_all_three(tmp_path):
    doc = synthetic_doc()
    (tmp_path / "matrix.json").write_text(json.dumps(doc))
    written = write_reports(tmp_path, doc)
    assert sorted(p.name for p in written) == ["junit.xml", "matrix.html", "matrix.md"]
    ET.parse(tmp_path / "junit.xml")
    assert (tmp_path / "matrix.html").read_text().startswith("<!DOCTYPE html>")


def test_reports_of_a_real_recorder_document(tmp_path):
    from glmverify.matrix import load
    from glmverify.results import CheckRecord, Recorder

    m = load()
    rec = Recorder(m, tmp_path, {"id": "run-1"})
    rec.add(CheckRecord(row=m.rows[0].id, feature=m.features[0], id="test_x", outcome="failed",
                        detail=CANARY, evidence={"content": CANARY}))
    doc = rec.write(final=True)
    write_reports(tmp_path, doc)
    page = (tmp_path / "matrix.html").read_text()
    assert page.count('class="cell st-') == len(m.rows) * len(m.features)
    assert "<script>" not in page
    assert "\\<script\\>" in (tmp_path / "matrix.md").read_text()


def test_document_is_not_modified_by_rendering():
    doc = synthetic_doc()
    before = copy.deepcopy(doc)
    render_html(doc), render_markdown(doc), render_junit(doc)
    assert doc == before


def test_markdown_and_page_show_claim_kinds_windows_and_errata(tmp_path):
    """On the repository's matrix: inferred cells carry their kind, context cells their window, and
    the errata are listed (seed words and correction)."""
    from glmverify.matrix import load
    from glmverify.report import kind_counts, render_html, render_markdown
    from glmverify.results import Recorder

    doc = Recorder(load(), tmp_path, {"id": "20250101T000000Z-k1nd5"}).document()
    md = render_markdown(doc)
    counts = kind_counts(doc)
    assert all(counts[k] for k in ("vendor-verified", "proposed", "derived"))
    assert f"**Inferred claims by kind:** vendor-verified {counts['vendor-verified']} · proposed {counts['proposed']}" in md
    assert "◐ inferred (vendor-verified)" in md and "◐ inferred (proposed)" in md and "◐ inferred (derived)" in md
    assert "## Errata: seed errors kept as the guides wrote them" in md and "**correction:**" in md
    page = render_html(doc, figures=[])
    assert page.count('class="kind kind-proposed"') == counts["proposed"]
    assert "window 524,288" in page and "window 200,000" in page  # ROCm; the 4-node Ascend and 200k PD rows
    assert '<h2 id="errata">Errata</h2>' in page
    cells = {(c["row"], c["feature"]): c for c in doc["cells"]}
    assert cells[("vllm-glm52-fp8-mi300x", "context_1m")]["window"] == 524288
    assert cells[("vllm-glm52-fp8-h200", "context_1m")]["window"] is None  # no recipe claims one
