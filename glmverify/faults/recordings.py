"""Recorded engine answers for the proxy's offline tests (``fixtures/faultproxy_recordings.jsonl.gz``).

``python -m glmverify.faults record --endpoint URL`` asks a running reference engine the few
requests tests/unit/test_faultproxy.py replays through the proxy's rewrites (chat and messages, stream
and not, from row ``reference``; spec-decode counters around a small workload from row
``reference-ngram`` with ``--what metrics``) and merges them into the file by id.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import httpx

from ..paths import FIXTURES_DIR
from .model import SUITES

RECORDINGS = FIXTURES_DIR / "faultproxy_recordings.jsonl.gz"


def record(endpoint: str, out: Path = RECORDINGS, what: tuple[str, ...] = ("chat", "messages")) -> Path:
    """Record the engine answers the proxy's rewrites are unit-tested on (gzip JSONL, merged by id).

    ``chat``/``messages`` from row reference; ``metrics`` (spec-decode counters before and after a
    small workload) from row reference-ngram.
    """
    tools = json.loads((SUITES / "cases" / "tools.json").read_text())
    base = endpoint.rstrip("/")
    items = []
    with httpx.Client(timeout=600) as h:
        model = h.get(base + "/v1/models").json()["data"][0]["id"]
        chat = {
            "reasoning": {"messages": [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
                          "reasoning_effort": "high"},
            "tools": {"messages": [{"role": "user", "content": "Call get_weather for city Tokyo and days 2, and also call get_time."}],
                      "tools": [tools["get_weather"], tools["get_time"]], "tool_choice": "auto", "reasoning_effort": "high"},
            "exact_string": {"messages": [{"role": "user", "content": 'Call write_note with text="  two leading spaces  " (a JSON string: keep it exactly).'}],
                             "tools": [tools["write_note"]], "tool_choice": "auto", "reasoning_effort": "high"},
        }
        msgs = {
            "thinking": {"messages": [{"role": "user", "content": "What is the capital of Italy? One word."}]},
            "tool_use": {"messages": [{"role": "user", "content": "Call get_weather for city Tokyo and days 2, and also call get_time."}],
                         "tools": [{"name": t["function"]["name"], "description": t["function"]["description"],
                                    "input_schema": t["function"]["parameters"]} for t in (tools["get_weather"], tools["get_time"])]},
        }
        if "chat" in what:
            for name, req in chat.items():
                for stream in (False, True):
                    body = {"model": model, "max_tokens": 1024, "temperature": 0, **req}
                    if stream:
                        body.update(stream=True, stream_options={"include_usage": True})
                    r = h.post(base + "/v1/chat/completions", json=body)
                    items.append({"id": f"chat-{name}-{'stream' if stream else 'nonstream'}", "kind": "chat", "stream": stream,
                                  "request": body, "status": r.status_code, "body": r.text})
        if "messages" in what:
            for name, req in msgs.items():
                for stream in (False, True):
                    body = {"model": model, "max_tokens": 1024, **req, **({"stream": True} if stream else {})}
                    r = h.post(base + "/v1/messages", json=body)
                    items.append({"id": f"messages-{name}-{'stream' if stream else 'nonstream'}", "kind": "messages",
                                  "stream": stream, "request": body, "status": r.status_code, "body": r.text})
        if "metrics" in what:
            def spec(text: str) -> str:
                return "\n".join(ln for ln in text.splitlines() if "spec_decode" in ln) + "\n"
            before = h.get(base + "/metrics").text
            for _ in range(4):  # decode-heavy, as suites/test_mtp_accept_length.py
                h.post(base + "/v1/chat/completions", json={"model": model, "max_tokens": 256, "ignore_eos": True, "messages": [
                    {"role": "user", "content": "Count from one to forty in words, separated by commas."}]})
            after = h.get(base + "/metrics").text
            if "spec_decode" not in after:
                raise RuntimeError(f"{endpoint} publishes no spec_decode counters: record metrics from row reference-ngram")
            for rid, text in (("metrics-before", before), ("metrics", after)):
                items.append({"id": rid, "kind": "metrics", "stream": False, "request": None, "status": 200, "body": spec(text)})
    merged = {d["id"]: d for d in load_recordings(out)} if out.exists() else {}
    merged.update({it["id"]: it for it in items})
    with gzip.open(out, "wt", encoding="utf-8") as f:
        for it in merged.values():
            f.write(json.dumps(it, ensure_ascii=False) + "\n")
    return out


def load_recordings(path: Path = RECORDINGS) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
