"""The accuracy cell on the page (issue #25): accuracy per window as an inline SVG sparkline and
the baseline comparison, escaped, under the page's strict CSP (no script, no style attribute)."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from glmverify.report import render_html
from glmverify.report.accuracy_plot import accuracy_html, comparison_lines, sparkline_svg, window_series

CANARY = "<script>window.__glm_canary=1</script>"


def accuracy_cell(windows, paired_status="failed", source=f"row base {CANARY}") -> dict:
    paired = {"rule": "accuracy[paired:think]", "status": paired_status, "n": 512, "estimate": 0.049,
              "interval": [0.021, 0.08], "effect": 0.03,
              "extra": {"baseline_accuracy": 0.97, "current_accuracy": 0.921, "baseline_right_current_wrong": 26,
                        "baseline_wrong_current_right": 1, "baseline_source": source}}
    drift = {"rule": "accuracy[drift]", "status": "verified", "n": 384, "estimate": 0.0, "interval": [-0.05, 0.04],
             "effect": 0.1}
    checks = {"test_against_baseline[think]": {"window_accuracy": [0.97] * 3, "decisions": [paired]},
              "test_steady_over_run": {"window_accuracy": windows, "decisions": [drift]},
              "test_against_baseline[nonthink]": {"baseline": {"none": "no baseline: none declared"}}}
    return {"row": "reference", "engine": "vllm", "image": "img", "hardware": "cpu", "feature": "accuracy_smoke",
            "status": "failed", "declared": "not_run", "basis": "b", "evidence": {"checks": checks},
            "checks": [{"id": k, "outcome": "failed" if "think]" in k else "passed", "detail": ""} for k in checks]}


def test_sparkline_is_one_point_per_window_top_is_full_accuracy():
    svg = sparkline_svg([1.0, 0.5, 0.0])
    root = ET.fromstring(svg)
    pts = [tuple(map(float, p.split(","))) for p in root.find("{http://www.w3.org/2000/svg}polyline").get("points").split()]
    assert len(pts) == 3 and pts[0][1] < pts[1][1] < pts[2][1] and pts[0][0] < pts[2][0]
    assert "style=" not in svg and "<script" not in svg


def test_the_steady_checks_windows_are_plotted_and_the_comparison_shown():
    cell = accuracy_cell([0.97, 0.94, 0.97, 0.72, 0.69])
    assert window_series(cell) == ("test_steady_over_run", [0.97, 0.94, 0.97, 0.72, 0.69])
    lines = comparison_lines(cell)
    assert any(l.startswith("accuracy[paired:think]: failed; baseline 97.0% vs now 92.1% on 512 questions, "
                            "discordant 26/1") for l in lines), lines
    assert any(l.startswith("accuracy[drift]: verified") for l in lines)
    assert any("no baseline" in l for l in lines)
    html = accuracy_html(cell)
    assert html.count("<circle") == 5 and CANARY not in html and "&lt;script&gt;" in html


def test_the_page_embeds_it_in_the_accuracy_cell_only():
    doc = {"schema": 1, "run": {"id": "r", "started": "s", "finished": "f"},
           "cells": [accuracy_cell([0.9, 0.8, 0.7]),
                     {**accuracy_cell([0.9, 0.8]), "feature": "tool_calls"}]}
    page = render_html(doc)
    assert page.count("<svg class=\"spark\"") == 1 and CANARY not in page
    assert re.search(r"accuracy\[paired:think\]: failed; baseline 97\.0%", page)


def test_nothing_is_drawn_without_windows():
    cell = accuracy_cell([0.9])
    cell["evidence"]["checks"]["test_against_baseline[think]"]["window_accuracy"] = []
    assert "<svg" not in accuracy_html(cell) and accuracy_html({"feature": "accuracy_smoke"}) == ""
