"""matrix.html in a real browser (headless Chromium): it renders, shows every status, and model
output planted in evidence never runs.

Two independent layers are checked, each against a positive control that proves the probe
would have seen a script run:
* escaping: with the page's CSP removed and a probe script added, ``window.__glm_canary`` is still
  undefined (the control, the same page with the canary left unescaped, reads 1);
* the Content-Security-Policy: a raw ``<script>`` injected into the real page does not run.
"""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from glmverify.report import write_reports

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome",
                                                        "google-chrome-stable")) if p), None)
pytestmark = pytest.mark.requires(
    None if CHROMIUM else "needs a Chromium browser on PATH (Debian: apt-get install chromium); "
                             "the page's markup is still tested without a browser in test_report.py")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--disable-extensions"]
CANARY = "<script>window.__glm_canary=1</script>"
PWN = "document.documentElement.setAttribute('data-glm-pwned', '{how}')"
PROBE = "<script>document.documentElement.setAttribute('data-canary', String(window.__glm_canary))</script>"


def synthetic_doc() -> dict:
    def cell(feature, status, checks=(), evidence=None, basis=""):
        return {"row": "vllm-glm52-fp8-h200", "engine": "vllm", "image": "vllm/vllm-openai:glm52", "hardware": "h200",
                "feature": feature, "status": status, "declared": "inferred", "basis": basis or f"{status} basis",
                "checks": list(checks), "evidence": {"checks": evidence} if evidence else {}}

    failed_evidence = {
        "request": {"messages": [{"role": "user", "content": "weather in Paris?"}]},
        "response": f"Sure! {CANARY} <img src=x onerror=\"{PWN.format(how='img')}\">"
                    f"<script>{PWN.format(how='script')}</script>",
    }
    return {"schema": 1,
            "run": {"id": "20250101T000000Z-b0b0b0", "started": "2025-01-01T00:00:00Z",
                    "finished": "2025-01-01T02:00:00Z", "launches": {"vllm-glm52-fp8-h200": 1}},
            "cells": [
                cell("mtp_accept_length", "verified", [{"id": "test_accept_length", "outcome": "passed", "detail": ""}],
                     {"test_accept_length": {"accept_length": 3.1, "per_position": [0.85, 0.6, 0.35, 0.2, 0.1]}}),
                cell("tool_calls", "failed",
                     [{"id": "test_tool_call[weather]", "outcome": "failed", "detail": f"no tool call in {CANARY}"}],
                     failed_evidence),
                cell("reasoning_split", "inferred", basis="recipe in the vLLM GLM-5.2 guide, not run"),
            ]}


def chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"  # a fresh profile per launch
    p = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, url], capture_output=True, text=True,
                       timeout=180, env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert p.returncode == 0, f"chromium exited {p.returncode}: {p.stderr[-2000:]}"
    return p


def dump_dom(tmp_path: Path, page: Path) -> str:
    return chromium(tmp_path, page.as_uri(), "--dump-dom").stdout


class DomScan(HTMLParser):
    def __init__(self, dom: str):
        super().__init__(convert_charrefs=True)
        self.scripts: list[str] = []
        self.root_attrs: dict = {}
        self.classes: list[str] = []
        self.text: list[str] = []
        self._script = False
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.root_attrs = a
        if tag == "script":
            self._script = True
            self.scripts.append("")
        self.classes += (a.get("class") or "").split()

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = False

    def handle_data(self, data):
        if self._script:
            self.scripts[-1] += data
        else:
            self.text.append(data)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("page")
    write_reports(d, synthetic_doc())
    return d / "matrix.html"


def test_page_shows_statuses_and_the_canary_only_as_text(page, tmp_path):
    dom = DomScan(dump_dom(tmp_path, page))
    for status in ("verified", "failed", "inferred"):
        assert f"st-{status}" in dom.classes
        assert any(t.strip().endswith(status) for t in dom.text), status
    assert "accept 3.10 (5 drafts)" in "".join(dom.text)
    assert dom.scripts == []  # no <script> element at all, let alone one with the canary
    text = "".join(dom.text)
    assert CANARY in text  # shown to the reader as text, in the drill-down
    assert "data-glm-pwned" not in dom.root_attrs


def test_escaping_alone_keeps_the_canary_from_running(page, tmp_path):
    html_text = page.read_text()
    no_csp = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html_text)
    assert no_csp != html_text
    probed = tmp_path / "probed.html"
    probed.write_text(no_csp.replace("</body>", PROBE + "</body>"))
    # control: the same page with the canary left unescaped; the probe must see it run
    control = tmp_path / "control.html"
    control.write_text(no_csp.replace("</body>", CANARY + PROBE + "</body>"))
    assert DomScan(dump_dom(tmp_path, control)).root_attrs.get("data-canary") == "1"
    attrs = DomScan(dump_dom(tmp_path, probed)).root_attrs
    assert attrs.get("data-canary") == "undefined"  # the probe ran; the planted canary did not
    assert "data-glm-pwned" not in attrs


def test_csp_blocks_scripts_even_if_escaping_failed(page, tmp_path):
    injected = tmp_path / "injected.html"
    injected.write_text(page.read_text().replace(
        "</body>", f"<script>window.__glm_canary=1;{PWN.format(how='csp')}</script>"
                   f"<img src=x onerror=\"{PWN.format(how='csp-img')}\"></body>"))
    attrs = DomScan(dump_dom(tmp_path, injected)).root_attrs
    assert "data-glm-pwned" not in attrs


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_screenshot_is_a_real_rendering(page, tmp_path):
    shot = tmp_path / "matrix.png"
    chromium(tmp_path, page.as_uri(), f"--screenshot={shot}", "--window-size=1400,1000")
    data = shot.read_bytes()
    assert _png_size(data) == (1400, 1000)
    assert len(data) > 20_000, "suspiciously small screenshot"
    from matplotlib.image import imread

    px = (imread(str(shot))[..., :3] * 255).round().astype(int).reshape(-1, 3)
    assert len({tuple(p) for p in px[:: 7]}) > 50, "screenshot is (nearly) one colour"
    # the three status backgrounds are on screen (cells and summary chips)
    for name, rgb in (("verified", (0xda, 0xfb, 0xe1)), ("failed", (0xff, 0xeb, 0xe9)), ("inferred", (0xff, 0xf8, 0xc5))):
        n = int((abs(px - rgb).max(axis=1) <= 3).sum())
        assert n > 1500, f"{name} background colour {rgb} covers only {n} pixels"


@pytest.fixture(scope="module")
def matrix_page(tmp_path_factory) -> Path:
    """The page of a real Recorder document over the repository's matrix.yaml (declared cells only)."""
    from glmverify.matrix import load
    from glmverify.results import Recorder

    d = tmp_path_factory.mktemp("matrix-page")
    rec = Recorder(load(), d, {"id": "20250101T000000Z-c1a1m5"})
    write_reports(d, rec.document())
    return d / "matrix.html"


def test_page_shows_vendor_verified_proposed_and_derived_claims_apart(matrix_page, tmp_path):
    from glmverify.matrix import load
    from glmverify.report import kind_counts
    from glmverify.results import Recorder

    doc = Recorder(load(), tmp_path, {"id": "x"}).document()
    counts = kind_counts(doc)
    assert all(counts[k] > 0 for k in ("vendor-verified", "proposed", "derived")), counts
    dom = DomScan(dump_dom(tmp_path, matrix_page))
    text = " ".join(dom.text)
    for kind, n in counts.items():
        # a badge per inferred cell of that kind, plus its summary chip with the count
        assert dom.classes.count(f"kd-{kind}") == n, kind
        assert f"{kind} {n}" in text, kind
    assert "Errata" in text and "the guide writes" in text and "--data-parallel-address $local_ip" in text
    shot = tmp_path / "kinds.png"
    chromium(tmp_path, matrix_page.as_uri(), f"--screenshot={shot}", "--window-size=1600,1400")
    from matplotlib.image import imread

    px = (imread(str(shot))[..., :3] * 255).round().astype(int).reshape(-1, 3)
    # the three kind badges render in their own colours (chips at the top of the page)
    for name, rgb in (("vendor-verified", (0xdd, 0xf4, 0xff)), ("proposed", (0xfb, 0xef, 0xff)), ("derived", (0xf6, 0xf8, 0xfa))):
        assert int((abs(px - rgb).max(axis=1) <= 3).sum()) > 100, f"{name} badge colour {rgb} not on screen"


def test_page_shows_diagnosis_and_known_issues(tmp_path):
    """A failed, diagnosed cell shows its top cause with source and fix (the others listed), and its
    row head the row's known issues: read back from the DOM Chromium built, inside those elements."""
    doc = {"schema": 1, "run": {"id": "run-diag"},
           "known_issues": {"vllm-row": [{"id": "bug-vllm-46040-tool-call-in-reasoning", "source": "vLLM #46040",
                                          "fix": "upgrade to vLLM >= 0.24 (PR #45915)", "versions": "<0.24",
                                          "engine_version": "0.23.0", "basis": "declared"}]},
           "cells": [{"row": "vllm-row", "engine": "vllm", "image": "img", "hardware": "h200", "feature": "tool_calls",
                      "status": "failed", "basis": "live run run-diag: 1 check(s) failed",
                      "checks": [{"id": "test_case[nonstream-auto-single-weather]", "outcome": "failed",
                                  "detail": "AssertionError: expected a tool call, got none"}], "evidence": {},
                      "diagnosis": [
                          {"id": "bug-vllm-46040-tool-call-in-reasoning", "score": 9.0,
                           "cause": "the call is written before </think> and lands in reasoning",
                           "source": "vLLM #46040", "fix": "upgrade to vLLM >= 0.24 (PR #45915)",
                           "matched": ["check tool_calls::test_case", "looks like /in reasoning/"]},
                          {"id": "standin-no-tool-call", "score": 6.0, "cause": "tool call answered in prose",
                           "source": "", "fix": "check the tools are rendered", "matched": []}]}]}
    write_reports(tmp_path, doc)
    dom = dump_dom(tmp_path, tmp_path / "matrix.html")
    diag = re.search(r'<div class="diag">(.*?)</div>', dom, re.S)
    assert diag, "no diagnosis element in the rendered page"
    text = re.sub(r"<[^>]+>", " ", diag.group(1)).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert "the call is written before </think> and lands in reasoning" in " ".join(text.split())
    assert "source: vLLM #46040" in " ".join(text.split()) and "fix: upgrade to vLLM >= 0.24 (PR #45915)" in " ".join(text.split())
    assert "tool call answered in prose" in text  # the other candidates, listed
    known = re.search(r'<details class="known">(.*?)</details>', dom, re.S)
    assert known, "no known issues in the row head"
    ktext = " ".join(re.sub(r"<[^>]+>", " ", known.group(1)).replace("&gt;", ">").split())
    assert "1 known issue(s)" in ktext and "bug-vllm-46040-tool-call-in-reasoning" in ktext and "vLLM #46040" in ktext
    assert "upgrade to vLLM >= 0.24 (PR #45915)" in ktext and "versions <0.24" in ktext.replace("&lt;", "<")
    assert "<script" not in dom


def test_page_shows_what_an_attached_verified_cell_only_declared(tmp_path):
    """A verified cell of an attached row says so and lists what was only declared (hardware, the
    recipe parts the server does not report), read back from the DOM Chromium built; a launched
    row's verified cell carries no such list."""
    def cell(row, launcher, declared):
        return {"row": row, "engine": "vllm", "image": "img", "hardware": "h200", "feature": "tool_calls",
                "status": "verified", "basis": "live run", "checks": [{"id": "t", "outcome": "passed", "detail": ""}],
                "evidence": {"engine": {"launcher": launcher, "observed_vs_declared": {"declared_only": declared}}}}
    doc = {"schema": 1, "run": {"id": "run-attach"},
           "cells": [cell("attached-row", "attach", ["--tensor-parallel-size 8", "--tool-call-parser glm47"]),
                     cell("launched-row", "container", ["--tool-call-parser glm47"])]}
    write_reports(tmp_path, doc)
    dom = dump_dom(tmp_path, tmp_path / "matrix.html")
    found = re.findall(r'<div class="attached">(.*?)</div>', dom, re.S)
    assert len(found) == 1, "exactly the attached row's cell shows what it only declared"
    text = " ".join(re.sub(r"<[^>]+>", " ", found[0]).split())
    assert "attached: hardware and 2 more declared" in text
    assert "hardware" in text and "--tensor-parallel-size 8" in text and "--tool-call-parser glm47" in text
