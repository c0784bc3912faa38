"""Clients for a running engine: OpenAI and Anthropic SDK clients plus the engine's side endpoints.

``EngineClient`` knows the base URL, the served model and the engine kind (vllm, sglang; "auto"
until ``glmverify.adapters.probe`` detects it). It speaks HTTP only: what differs per engine
(which endpoints exist, how to read them) is the engine's adapter (``glmverify.adapters``). SDK clients are built with ``max_retries=0`` (a retry would hide a
flaky engine) and a bounded timeout, so a hung engine fails its check instead of the run.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import httpx

DEFAULT_TIMEOUT = 120.0
MAX_BODY = 8 * 1024 * 1024  # side endpoints larger than this are garbage, not data


class EngineProtocolError(AssertionError):
    """The engine answered something a conforming server never would."""


def _json(resp: httpx.Response, what: str) -> Any:
    if len(resp.content) > MAX_BODY:
        raise EngineProtocolError(f"{what}: body of {len(resp.content)} bytes exceeds {MAX_BODY}")
    try:
        return resp.json()
    except ValueError:
        raise EngineProtocolError(f"{what}: HTTP {resp.status_code}, not JSON: {resp.text[:300]!r}") from None


def parse_prometheus(text: str) -> dict[str, float]:
    """Prometheus text format → {'name{labels}': value}; labels kept verbatim, sorted."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEnaNInf]+)", line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        if labels:
            parts = sorted(p.strip() for p in re.findall(r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"', labels))
            labels = "{" + ",".join(parts) + "}"
        try:
            out[name + labels] = float(value)
        except ValueError:
            continue
    return out


@dataclass
class EngineClient:
    base_url: str
    model: str | None = None
    engine: str = "auto"
    timeout: float = DEFAULT_TIMEOUT
    api_key: str = "EMPTY"
    facts: dict[str, Any] = field(default_factory=dict)
    # where the engine's Prometheus text is read when the endpoint (a gateway) does not route
    # /metrics (--metrics-url); None: base_url + /metrics
    metrics_url: str | None = None

    def url_for(self, *parts: str) -> str:
        return self.base_url.rstrip("/") + "/" + "/".join(p.strip("/") for p in parts)

    # ---- SDK clients ----------------------------------------------------------------------------
    def openai(self, **kw):
        import openai

        return openai.OpenAI(base_url=self.url_for("v1"), api_key=self.api_key,
                             max_retries=0, timeout=kw.pop("timeout", self.timeout), **kw)

    def async_openai(self, **kw):
        import openai

        return openai.AsyncOpenAI(base_url=self.url_for("v1"), api_key=self.api_key,
                                  max_retries=0, timeout=kw.pop("timeout", self.timeout), **kw)

    def anthropic(self, **kw):
        import anthropic

        return anthropic.Anthropic(base_url=self.base_url, api_key=self.api_key,
                                   max_retries=0, timeout=kw.pop("timeout", self.timeout), **kw)

    def async_anthropic(self, **kw):
        import anthropic

        return anthropic.AsyncAnthropic(base_url=self.base_url, api_key=self.api_key,
                                        max_retries=0, timeout=kw.pop("timeout", self.timeout), **kw)

    def http(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=kw.pop("timeout", self.timeout),
                            headers={"Authorization": f"Bearer {self.api_key}"}, **kw)

    # ---- side endpoints -------------------------------------------------------------------------
    def get_json(self, path: str, timeout: float = 30.0) -> Any:
        with self.http(timeout=timeout) as h:
            r = h.get(path)
        if r.status_code != 200:
            raise EngineProtocolError(f"GET {path}: HTTP {r.status_code}: {r.text[:300]!r}")
        return _json(r, f"GET {path}")

    def models(self) -> list[dict]:
        data = self.get_json("/v1/models")
        if not isinstance(data, dict) or not isinstance(data.get("data"), list) or not data["data"]:
            raise EngineProtocolError(f"/v1/models: expected a non-empty data list, got {str(data)[:300]}")
        return data["data"]

    def max_model_len(self) -> int | None:
        for m in self.models():
            if m.get("id") == self.model or self.model is None:
                v = m.get("max_model_len")
                return int(v) if isinstance(v, (int, float)) else None
        return None

    def version(self, paths: Iterable[str] = ("/version",)) -> str | None:
        """The version the first of ``paths`` reports (``{"version": ...}``); which paths an engine
        answers is its adapter's ``version_paths``."""
        for path in paths:
            try:
                d = self.get_json(path, timeout=10)
            except (EngineProtocolError, httpx.HTTPError):
                continue
            if isinstance(d, dict) and d.get("version"):
                return str(d["version"])
        return None

    def tokenize(self, **body) -> dict:
        """vLLM ``POST /tokenize``: the exact prompt the chat template renders."""
        body.setdefault("model", self.model)
        with self.http(timeout=60) as h:
            r = h.post("/tokenize", json=body)
        if r.status_code != 200:
            raise EngineProtocolError(f"POST /tokenize: HTTP {r.status_code}: {r.text[:300]!r}")
        return _json(r, "POST /tokenize")

    def metrics(self) -> dict[str, float]:
        if self.metrics_url:
            r = httpx.get(self.metrics_url, timeout=30)
            where = f"GET {self.metrics_url}"
        else:
            with self.http(timeout=30) as h:
                r = h.get("/metrics")
            where = "GET /metrics"
        if r.status_code != 200:
            raise EngineProtocolError(f"{where}: HTTP {r.status_code}")
        return parse_prometheus(r.text)

    def healthy(self) -> bool:
        try:
            with self.http(timeout=10) as h:
                return h.get("/health").status_code == 200
        except httpx.HTTPError:
            return False
