"""Engine adapters: one object per engine answering every engine difference (``base``).

``adapter_for(engine)`` is the adapter of a matrix ``engine`` value or an API kind ("vllm",
"sglang", "vllm-ascend"); ``adapter_for_row(row)`` also knows the reference engine
(``Row.is_reference``: the engine's adapter with the reference's container defaults).
``detect_engine(client)`` is ``--engine auto``; ``probe(client)`` fills in a client's served
model, engine kind and facts.

The registry is the one list of engines. Everything else that names engines reads it:
``ENGINE_NAMES`` (a live view: the fault catalogue's ``affects``), ``api_choices()`` (``--engine``
of the CLI and the plugin), the matrix (``register`` reports each name and API kind to
``matrix.register_engine``: the schema's engine enum, ``engine_kind``) and the parser
environments (``register`` reports the adapter's ``parser_env`` to ``parsers.envs``). Those two
sit below the adapters, so they are told rather than importing them: a matrix read in a process
that never imported this package (``python -m glmverify.matrix``) checks engine names as strings.

A new engine is one adapter module plus one ``register(...)`` call (below for a built-in one, in
its own module for a plug-in: ``tests/unit/test_new_engine.py`` adds one that way).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from ..matrix import register_engine, unregister_engine
from ..parsers.envs import register_parser_env, unregister_parser_env
from .base import (AcceptLengthMeter, ContainerDefaults, EngineAdapter, Measurement, ParserFlags,
                   RemovedFlag)
from .reference import reference_of
from .sglang import SglangAdapter
from .vllm import VllmAdapter
from .vllm_ascend import VllmAscendAdapter

if TYPE_CHECKING:
    from ..client import EngineClient

__all__ = ["AcceptLengthMeter", "ContainerDefaults", "EngineAdapter", "Measurement", "ParserFlags", "RemovedFlag",
           "ADAPTERS", "ENGINE_NAMES", "register", "unregister", "adapter_for", "adapter_for_row", "api_adapters",
           "api_choices", "detect_engine", "probe", "ServedModelError"]

ADAPTERS: dict[str, EngineAdapter] = {}


class _EngineNames:
    """The registered engine names, read at each use (a plug-in registered later is included):
    ``name in ENGINE_NAMES``, iteration in registration order, and a readable repr for messages."""

    def __contains__(self, name: object) -> bool:
        return name in ADAPTERS

    def __iter__(self) -> Iterator[str]:
        return iter(list(ADAPTERS))

    def __len__(self) -> int:
        return len(ADAPTERS)

    def __repr__(self) -> str:
        return repr(tuple(ADAPTERS))


ENGINE_NAMES = _EngineNames()


def register(adapter: EngineAdapter) -> EngineAdapter:
    """Add ``adapter`` under its ``name`` and tell the layers below about it (they cannot import
    the adapters): the matrix its name and API kind, the parser runner its parser environment."""
    if not getattr(adapter, "name", None) or not getattr(adapter, "api", None):
        raise ValueError(f"{adapter!r}: an adapter needs a name and an api")
    ADAPTERS[adapter.name] = adapter
    register_engine(adapter.name, adapter.api)
    if adapter.parser_env is not None:
        register_parser_env(adapter.name, adapter.parser_env)
    return adapter


def unregister(name: str) -> None:
    """Remove an engine ``register`` added, everywhere it was reported (a plug-in's tests)."""
    ADAPTERS.pop(name, None)
    unregister_engine(name)
    unregister_parser_env(name)


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
    """The adapter that launches and reads a row: reference rows are the project's own engine."""
    adapter = adapter_for(row.engine)
    return reference_of(adapter) if row.is_reference else adapter


def api_adapters() -> list[EngineAdapter]:
    """One adapter per API kind (vllm-ascend speaks vLLM's): the candidates of detection."""
    return [a for a in ADAPTERS.values() if a.name == a.api]


def api_choices(auto: bool = True) -> list[str]:
    """The API kinds ``--engine`` accepts (an endpoint is read by its API), with ``auto`` (probe)."""
    return [a.api for a in api_adapters()] + (["auto"] if auto else [])


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


class ServedModelError(ValueError):
    """The endpoint does not serve the model a run must talk to (or serves several, none named)."""


def probe(client: "EngineClient") -> "EngineClient":
    """Fill in served model and engine kind from the endpoint when not given, and the facts the
    evidence records (engine, served model, version, max_model_len). The served model is pinned:
    a named one must be listed by ``/v1/models`` (else ``ServedModelError`` with the list), and an
    unnamed one is taken only when the endpoint serves exactly one."""
    models = client.models()
    ids = [str(m.get("id")) for m in models]
    if client.model is None:
        # the first of several is never taken: the suites would talk to a model nobody named
        if len(ids) != 1:
            raise ServedModelError(f"the endpoint serves {len(ids)} models ({', '.join(ids) or 'none'}); "
                                   "name the row (--row ID) or the model (--served-model NAME)")
        client.model = ids[0]
    elif client.model not in ids:
        raise ServedModelError(f"the endpoint does not serve model {client.model!r}; it serves: {', '.join(ids) or 'none'}")
    if client.engine == "auto":
        client.engine = detect_engine(client, models)
    client.facts.update(engine=client.engine, served_model=client.model, version=adapter_for(client.engine).version(client),
                        max_model_len=client.max_model_len())
    return client
