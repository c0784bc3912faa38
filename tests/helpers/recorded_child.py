"""A child pytest run of suite-style checks with the plugin, against recorded engine streams instead
of a launched engine: what a real run writes to matrix.json, for the unit tier.

The child's ``engine`` fixture answers every chat request with ``good.sse``, or with
``resent.sse`` when the prompt says "resent" (a stream that re-sends a run of deltas)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CONFTEST = '''
import os
import httpx, pytest
from glmverify.matrix import load
from glmverify.session import LiveEngine


class RecordedClient:
    """Answers with a recorded stream: the re-sent one when the prompt says so."""
    engine, model = "vllm", "glm-5.2-ref"

    def async_openai(self, timeout):
        import openai

        def reply(request):
            name = "resent.sse" if b"resent" in request.content else "good.sse"
            body = open(os.path.join(os.environ["RECORDED_BODIES"], name)).read()
            return httpx.Response(200, content=body.encode(), headers={"content-type": "text/event-stream"})
        return openai.AsyncOpenAI(base_url="http://engine.invalid/v1", api_key="none", max_retries=0,
                                  http_client=httpx.AsyncClient(transport=httpx.MockTransport(reply)))

    def tokenize(self, prompt, **_):
        return {"count": len(prompt.encode("utf-8"))}


@pytest.fixture(scope="session")
def engine(request):  # the row's engine answers with recorded streams instead of being launched
    return LiveEngine(row=load().row(request.param), server=None, client=RecordedClient(), launch_id="recorded")
'''


def resent_after(body: list[str], i: int) -> str:
    """The stream ``body`` (its lines) with the 12 lines from ``i`` sent twice."""
    return "\n".join(body[:i + 12] + body[i:i + 12] + body[i + 12:])


def run_child(tmp_path: Path, test_source: str, names: list[str], good: str, resent: str,
              row: str = "reference") -> tuple[subprocess.CompletedProcess, dict]:
    """Run ``names`` of ``test_source`` (as test_child.py) on ``row`` in a child pytest with the plugin;
    the finished process and its matrix.json."""
    (tmp_path / "resent.sse").write_text(resent)
    (tmp_path / "good.sse").write_text(good)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_child.py").write_text(test_source)
    env = {**os.environ, "RECORDED_BODIES": str(tmp_path),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "glmverify.plugin", "-p", "no:cacheprovider", "-q",
                          "--results=" + str(tmp_path / "results"), *[f"test_child.py::{n}[{row}]" for n in names]],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    return run, json.loads((tmp_path / "results" / "matrix.json").read_text())
