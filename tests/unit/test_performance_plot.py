"""The page's serving_performance figure: a panel per hardware with each measured row's levels,
the guide's published point and the baseline; rendered into the HTML page. A cell without
measured windows draws nothing (the planted contrast)."""
from __future__ import annotations

import base64
import re

from glmverify.report import render_html
from glmverify.report.perf_plot import levels
from glmverify.report.plots import render_figures


def cell(row, hardware, accelerators, lv):
    return {"row": row, "engine": "vllm", "image": "x", "hardware": hardware, "feature": "serving_performance",
            "status": "verified", "declared": "not_run", "basis": "", "checks": [],
            "evidence": {"checks": {"test_client_report": {"accelerators": accelerators, "levels": lv}}}}


def level(tpot, tok, figure=None, base=None):
    return {"window_records": [{"tpot_ms": tpot, "output_throughput": tok}, {"tpot_ms": tpot, "output_throughput": tok}],
            "against_figure": {"figure": figure} if figure else None, "baseline_means": base}


def doc():
    return {"schema": 1, "run": {}, "errata": [], "known_issues": [], "cells": [
        cell("reference", "cpu", 0, {"1": level(2.5, 400.0, base={"tpot_ms": 2.4, "output_throughput": 420.0}),
                                     "4": level(2.7, 1400.0)}),
        cell("sglang-h200-low-latency", "h200", 8, {"1": level(3.0, 272.0, figure={"tpot_ms": 3.03, "tok_s_per_gpu": 34})}),
    ]}


def test_levels_are_per_user_and_per_gpu():
    lv = levels(doc()["cells"][1])
    assert lv[0]["user_tok_s"] == 1000.0 / 3.0 and lv[0]["tok_s"] == 34.0 and lv[0]["figure"] == (1000.0 / 3.03, 34)
    ref = levels(doc()["cells"][0])
    assert [p["concurrency"] for p in ref] == [1, 4] and ref[0]["baseline"] == (1000.0 / 2.4, 420.0)


def test_the_page_shows_the_plot():
    d = doc()
    figs = [f for f in render_figures(d) if f["id"] == "fig-performance"]
    assert figs and figs[0]["src"].startswith("data:image/png;base64,")
    page = render_html(d)
    imgs = dict(re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page))
    assert base64.b64decode(imgs["Serving performance per hardware"])[:8] == b"\x89PNG\r\n\x1a\n"
    for c in d["cells"]:  # planted: no measured windows, no figure
        c["evidence"]["checks"]["test_client_report"]["levels"] = {}
    assert not [f for f in render_figures(d) if f["id"] == "fig-performance"]
