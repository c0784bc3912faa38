"""What every engine adapter answers, and the values its answers are made of.

An ``EngineAdapter`` is one object per engine (vLLM, SGLang, vllm-ascend; the reference engine is
one of them with CPU container defaults, ``adapters.reference``). Everything the harness does
differently per engine is a method or a class attribute here, so suites and harness modules ask
the adapter instead of comparing engine names:

* the rendered prompt: whether the engine shows the prompt its chat template rendered
  (``shows_rendered_prompt``), how to get it (``rendered_prompt``) and how to count a text's
  tokens with the engine's tokenizer (``count_text_tokens``); for text accounting a batch counter
  of answer texts (``text_token_counter``) and the tokenizer's special tokens (``special_tokens``),
  both read from the stand-in's tokenizer file on the reference engine;
* prompt token counting for chat messages (``prompt_token_counter``);
* speculative-decoding statistics (``accept_length_meter``: a meter that measures the accept
  length over a batch of requests, from whatever the engine exposes);
* prefix-cache accounting (``prefix_cache_meter``: how many prompt tokens of one request the
  engine served from its prefix cache, so a long-context sweep records the prefill it cost);
* which assistant-message fields carry earlier reasoning back in (``input_reasoning_fields``);
* version probing (``version_paths``) and engine detection (``recognises``, ``answers_probe``);
* container defaults (``container``: kind, default port, health path, mounts);
* parser flags (``parser_flags``), the parser release the conformance runner installs on CPU and
  how it installs and runs it (``parser_env``, a ``parsers.envs.ParserEnv``);
* flags an engine release no longer accepts (``removed_flags``);
* how the fault coverage counts it (``covers_every_check``);
* the observed-args source: what the recipe declares about speculation (``declared_speculation``),
  what the server reports about its configuration (``observe_config``) and how the two compare
  (``compare_config``).

Adapters sit above ``client`` (they drive an ``EngineClient``) and below ``observed``,
``containers`` and ``session``; they import nothing of those.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from ..ledger import TokenCounter
from ..parsers.envs import ParserEnv

if TYPE_CHECKING:  # annotations only: adapters receive these, they never build them
    from ..chat import Chat
    from ..client import EngineClient

#: the flags a recipe sets its context window with (vLLM, its underscore spelling, SGLang)
WINDOW_FLAGS = ("--max-model-len", "--max_model_len", "--context-length")
#: judge(what, declared, observed, same): records one compared setting (``observed.compare``)
Judge = Callable[[str, Any, Any, bool], None]


# ---- values ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ContainerDefaults:
    """What a container of this engine gets unless its row says otherwise."""

    kind: str                      # recorded in the evidence and the plan (``ContainerSpec.kind``)
    default_port: int = 8000       # the port the engine listens on inside the container
    health_path: str = "/health"
    mount_hf_cache: bool = False   # GPU images download weights into the Hugging Face cache
    shm_size: str | None = None


@dataclass(frozen=True)
class ParserFlags:
    """The launch flags naming the engine's reasoning and tool-call parsers."""

    reasoning: str = "--reasoning-parser"
    tool: str = "--tool-call-parser"

    def names(self, args: list[str]) -> tuple[str | None, str | None]:
        """(reasoning parser, tool parser) named by a launch's args."""
        return flag_value(args, self.reasoning), flag_value(args, self.tool)


@dataclass(frozen=True)
class RemovedFlag:
    """A flag an engine release stopped accepting: a recipe using it does not start."""

    flag: str
    since: tuple[int, ...]
    why: str


@dataclass
class Measurement:
    """Accept lengths measured over one batch of requests, with what the batch showed."""

    values: list[float]            # one accept length per window (vLLM) or per request (SGLang)
    records: list[dict]            # the evidence of each value
    problems: list[str]            # defects that fail the check (an error, inconsistent counters)


class AcceptLengthMeter:
    """Measures speculative decoding's accept length from the engine's own statistics.

    ``begin()`` raises ``AssertionError`` when the engine exposes no statistics at all;
    ``measure(chat, prompts, max_tokens)`` sends ``requests_per_value`` prompts per value;
    ``summary(records)`` is the evidence of the whole workload and the defects it shows.
    """

    source: str = ""
    quantity: str | None = None    # what one value is, when not the rule's default (per window)
    requests_per_value: int = 1
    evidence_records: int = 32     # how many records the evidence keeps

    def begin(self) -> None:
        pass

    def measure(self, chat: "Chat", prompts: list[str], max_tokens: int) -> Measurement:
        raise NotImplementedError

    def summary(self, records: list[dict]) -> tuple[dict, list[str]]:
        return {}, []

    def positions(self) -> dict | None:
        """Per-draft-position acceptance since ``begin()``: ``{"drafts", "accepted", "per_position":
        {k: accepted tokens at position k}}``; None where the engine counts no positions."""
        return None

    def context(self, records: list[dict]) -> str:
        """What the decision was made over, for its message."""
        return f"over {len(records)} measurements from {self.source}"



class PrefixCacheMeter:
    """How many prompt tokens of one request the engine served from its prefix cache.

    ``request_fields`` are added to the request so that the engine reports it; ``start()`` is
    called before the request and ``read(body, prompt_tokens)`` after it, returning
    ``{"cached": int | None, "clean": bool | None, ...}``: ``cached`` None where the engine
    reports nothing, ``clean`` False where the count may include other clients' requests
    (engine-wide counters on a shared server). The portable source, read here: the OpenAI field
    ``usage.prompt_tokens_details.cached_tokens`` (Anthropic: ``usage.cache_read_input_tokens``),
    which engines fill only when asked to (vLLM ``--enable-prompt-tokens-details``, SGLang
    ``--enable-cache-report``).
    """

    source: str = "usage.prompt_tokens_details.cached_tokens"
    request_fields: dict = {}

    def __init__(self, client: "EngineClient"):
        self.client = client

    def fields(self, endpoint: str) -> dict:
        """Fields to add to a request to ``endpoint`` (``chat`` or ``messages``)."""
        return dict(self.request_fields) if endpoint == "chat" else {}

    def start(self) -> None:
        pass

    def read(self, body: dict, prompt_tokens: int | None) -> dict:
        usage = (body or {}).get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        if cached is None:
            cached = usage.get("cache_read_input_tokens")
        return {"cached": cached if isinstance(cached, int) else None, "clean": True if isinstance(cached, int) else None}

# ---- helpers shared by the adapters and observed.py ------------------------------------------------
def is_placeholder(v: Any) -> bool:
    """A recipe value the seed leaves to the operator (``{model}``, ``$IP``, ``<path>``)."""
    return isinstance(v, str) and bool(re.search(r"\{\w+\}|\$\w|<[^>]+>", v))


def argmap(args: list[str]) -> dict[str, Any]:
    """Recipe argv -> {flag: value}; a bare flag is True, ``--no-X`` stays its own flag."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        tok = args[i]
        if tok.startswith("--"):
            name, eq, val = tok.partition("=")
            if eq:
                out[name] = val
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                out[name] = args[i + 1]
                i += 1
            else:
                out[name] = True
        i += 1
    return out


def flag_value(args: list[str], name: str) -> str | None:
    """The value of ``name`` in argv (``--flag value`` or ``--flag=value``), else None."""
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def same_value(declared_value: Any, observed_value: Any) -> bool:
    """Declared and observed settings agree (a bare flag is true; numbers compare as numbers)."""
    if declared_value is True:
        return observed_value in (True, "True", "true", 1)
    try:
        return float(declared_value) == float(observed_value)
    except (TypeError, ValueError):
        return str(declared_value).strip().lower() == str(observed_value).strip().lower()


def prom_labels(key: str) -> dict[str, str]:
    """The labels of a ``parse_prometheus`` key (``name{a="1",b="2"}``)."""
    return dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', key))


def as_count(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, str)) and str(v).isdigit() else None


def json_object(text: Any) -> dict | None:
    """A JSON object written as a flag value (``--speculative-config '{...}'``), else None."""
    if not isinstance(text, str) or is_placeholder(text):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# ---- the adapter ------------------------------------------------------------------------------------
class EngineAdapter:
    """One engine's answers; subclasses set the class attributes and override what differs."""

    name: ClassVar[str]                      # the matrix's ``engine`` value
    api: ClassVar[str]                       # the API it speaks (``matrix.engine_kind``)
    container: ClassVar[ContainerDefaults]
    parser_flags: ClassVar[ParserFlags] = ParserFlags()
    #: the engine release whose parsers the conformance runner installs on a CPU machine
    parser_conformance_version: ClassVar[str | None] = None
    #: how that release's parsers are installed and run (None: no CPU parser conformance)
    parser_env: ClassVar[ParserEnv | None] = None
    #: the fault coverage holds the engine to every check of the suites its reference rows serve;
    #: False: to the checks its conforming run ran (a check its reference rows cannot run, such as
    #: speculative decoding on a CPU SGLang, is not a coverage gap)
    covers_every_check: ClassVar[bool] = False
    removed_flags: ClassVar[tuple[RemovedFlag, ...]] = ()
    #: GET paths that report ``{"version": ...}``, tried in order
    version_paths: ClassVar[tuple[str, ...]] = ("/version",)
    #: an environment variable that fakes speculative acceptance (benchmark mode): never verified
    simulated_acceptance_env: ClassVar[str | None] = None
    shows_rendered_prompt: ClassVar[bool] = False
    #: the assistant-message fields the engine reads earlier reasoning from when a client sends it
    #: back (input side; the answer's own field name is recorded by ``chat``)
    input_reasoning_fields: ClassVar[tuple[str, ...]] = ("reasoning_content",)
    reference: bool = False                  # the project's own engine (``adapters.reference``)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}{' (reference)' if self.reference else ''}>"

    # ---- rendered prompt and tokens -------------------------------------------------------------
    def rendered_prompt(self, client: "EngineClient", messages: list[dict], body: dict) -> str | int | None:
        """The exact prompt a chat completion with ``body`` ran on; an int is the HTTP status of a
        refused request; None where the engine does not show it."""
        return None

    def count_text_tokens(self, client: "EngineClient", text: str) -> int | None:
        """Tokens of ``text`` in the engine's own tokenizer, where the engine exposes it."""
        return None

    def text_token_counter(self, client: "EngineClient", profile: Any = None) -> TokenCounter | None:
        """Counts answer texts in the engine's tokenizer (``ledger``: text accounting): the
        stand-in's tokenizer file on the reference engine where ``tokenizers`` is installed (no
        request), else the engine's endpoint (``endpoint_token_counter``), else None."""
        if self.reference:
            local = standin_token_counter(profile)
            if local is not None:
                return local
        return self.endpoint_token_counter(client)

    def endpoint_token_counter(self, client: "EngineClient") -> TokenCounter | None:
        return None

    def special_tokens(self, profile: Any = None) -> tuple[str, ...] | None:
        """The tokenizer's special tokens where the harness can read them (the reference engine's
        stand-in tokenizer file); None: the caller's constant (``invariants.GLM_SPECIAL_TOKENS``)."""
        path = _standin_file(profile, "tokenizer.json") if self.reference else None
        if path is None:
            return None
        added = json.loads(path.read_text()).get("added_tokens") or []
        return tuple(t["content"] for t in added if isinstance(t, dict) and t.get("special")) or None

    def prompt_token_counter(self, client: "EngineClient", chat_template_kwargs: dict) -> Callable[[list[dict]], int]:
        """Counts the prompt tokens of chat messages as the engine renders them. The portable way:
        a one-token completion reports ``prompt_tokens``."""
        def via_usage(msgs: list[dict]) -> int:
            r = client.openai().chat.completions.create(model=client.model, messages=msgs, max_tokens=1,
                                                        extra_body={"chat_template_kwargs": chat_template_kwargs})
            return r.usage.prompt_tokens
        return via_usage

    # ---- launch ------------------------------------------------------------------------------------
    def process_placeholders(self, row) -> dict[str, str]:
        """Values of engine-specific placeholders in a ``launcher: process`` row's command."""
        return {}

    # ---- speculative decoding -------------------------------------------------------------------
    def accept_length_meter(self, client: "EngineClient", draft_tokens: int, window: int) -> AcceptLengthMeter:
        """A meter for a workload of windows of ``window`` requests (where the engine counts per
        window) and a row claiming ``draft_tokens``."""
        raise NotImplementedError(f"{self.name}: no speculative-decoding statistics known")

    # ---- prefix cache ------------------------------------------------------------------------------
    def prefix_cache_meter(self, client: "EngineClient") -> PrefixCacheMeter:
        """A meter of the prompt tokens one request was served from the prefix cache (the
        engine's own count; the portable usage field here)."""
        return PrefixCacheMeter(client)

    # ---- identity ------------------------------------------------------------------------------
    def version(self, client: "EngineClient") -> str | None:
        return client.version(self.version_paths)

    def recognises(self, models: list[dict]) -> bool:
        """``/v1/models`` says it is this engine (``owned_by``)."""
        return any(m.get("owned_by") == self.api for m in models)

    def answers_probe(self, client: "EngineClient") -> bool:
        """An endpoint only this engine serves answers (the fallback when ``owned_by`` is silent)."""
        return False

    # ---- observed vs declared ---------------------------------------------------------------------
    def declared_speculation(self, args: dict[str, Any]) -> tuple[bool, int | None]:
        """(speculative decoding on, draft tokens) as the recipe's args declare them."""
        return False, None

    def observe_config(self, client: "EngineClient", obs: dict[str, Any]) -> None:
        """Add what the server reports about its configuration to ``obs`` (errors are recorded in
        ``obs["endpoints"]``, never raised)."""

    def compare_config(self, declared: dict[str, Any], obs: dict[str, Any], judge: Judge, only: list[str]) -> None:
        """Judge the declared args against ``obs``; what nothing reports goes to ``only``."""
        args = declared["args"]
        only += [flag if v is True else f"{flag} {v}" for flag, v in args.items()]


def _standin_file(profile: Any, name: str):
    """A file of the built stand-in model serving ``profile``, or None (not built here)."""
    from ..standin.build import model_dir_for

    try:
        path = model_dir_for(profile) / name
    except ValueError:
        return None
    return path if path.is_file() else None


def standin_token_counter(profile: Any = None) -> TokenCounter | None:
    """The stand-in's own tokenizer, loaded with ``tokenizers`` (optional: not in the core
    dependencies), counting as the engine does (no special tokens added)."""
    path = _standin_file(profile, "tokenizer.json")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    if path is None:
        return None
    tok = Tokenizer.from_file(str(path))
    return TokenCounter(f"the stand-in's tokenizer ({path.parent.name}/tokenizer.json)",
                        lambda texts: [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)],
                        remote=False)
