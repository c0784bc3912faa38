"""Engine adapters: one object per engine answering every engine difference (``base``).

``adapter_for(engine)`` is the adapter of a matrix ``engine`` value or an API kind ("vllm",
"sglang", "vllm-ascend"); ``adapter_for_row(row)`` also knows the reference engine (``hardware:
cpu``: the engine's adapter with the reference's container defaults). ``detect_engine(client)``
is ``--engine auto``; ``probe(client)`` fills in a client's served model, engine kind and facts.

A new engine is one adapter module plus one ``register(...)`` line below.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .base import (AcceptLengthMeter, ContainerDefaults, EngineAdapter, Measurement, ParserFlags,
                   RemovedFlag)
from .reference import reference_of
from .sglang import SglangAdapter
from .vllm import VllmAdapter
from .vllm_ascend import VllmAscendAdapter

if TYPE_CHECKING:
    from ..client import EngineClient

__all__ = ["AcceptLengthMeter", "ContainerDefaults", "EngineAdapter", "Measurement", "ParserFlags", "RemovedFlag",
           "ADAPTERS", "register", "adapter_for", "adapter_for_row", "api_adapters", "detect_engine", "probe"]

ADAPTERS: dict[str, EngineAdapter] = {}


def register(adapter: EngineAdapter) -> EngineAdapter:
    ADAPTERS[adapter.name] = adapter
    return adapter


register(VllmAdapter())
register(SglangAdapter())
register(VllmAscendAdapter())

#: when nothing identifies an endpoint, it is taken for vLLM (the most common OpenAI server)
DEFAULT_API = "vllm"


def adapter_for(engine: str) -> EngineAdapter:
    """The adapter of a matrix engine or API kind; a KeyError names the known ones."""
    try:
        return ADAPTERS[engine]
    except KeyError:
        raise KeyError(f"no adapter for engine {engine!r} (known: {', '.join(sorted(ADAPTERS))})") from None


def adapter_for_row(row) -> EngineAdapter:
    """The adapter that launches and reads a row: reference rows (``hardware: cpu``) are the
    project's own engine."""
    adapter = adapter_for(row.engine)
    return reference_of(adapter) if row.hardware == "cpu" else adapter


def api_adapters() -> list[EngineAdapter]:
    """One adapter per API kind (vllm-ascend speaks vLLM's): the candidates of detection."""
    return [a for a in ADAPTERS.values() if a.name == a.api]


def detect_engine(client: "EngineClient", models: list[dict] | None = None) -> str:
    """``--engine auto``: ``/v1/models`` ``owned_by`` first, then an endpoint only one engine serves."""
    models = client.models() if models is None else models
    candidates = api_adapters()
    for a in candidates:
        if a.recognises(models):
            return a.api
    for a in candidates:
        if a.answers_probe(client):
            return a.api
    return DEFAULT_API


def probe(client: "EngineClient") -> "EngineClient":
    """Fill in served model and engine kind from the endpoint when not given, and the facts the
    evidence records (engine, served model, version, max_model_len)."""
    models = client.models()
    if client.model is None:
        client.model = models[0]["id"]
    if client.engine == "auto":
        client.engine = detect_engine(client, models)
    client.facts.update(engine=client.engine, served_model=client.model, version=adapter_for(client.engine).version(client),
                        max_model_len=client.max_model_len())
    return client
