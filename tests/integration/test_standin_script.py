"""Unit tests of the GLM-5.2 stand-in: the model builder, the chat template, the script, the processor.

The template is rendered the way vLLM renders it (transformers ``apply_chat_template`` on the
built tokenizer); the script is fed those prompts. No server is started here.
"""

from __future__ import annotations

import json
import random
import re
import statistics
from pathlib import Path

import pytest

from helpers.require import need, need_module  # noqa: E402

jsonschema = need_module("jsonschema")
transformers = need_module("transformers")
need_module("tokenizers")
need_module("numpy")

from glmverify.standin import build as standin_build  # noqa: E402
from glmverify.standin import script  # noqa: E402

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return standin_build.build(tmp_path_factory.mktemp("standin") / "model")


@pytest.fixture(scope="module")
def tok(model_dir):
    return transformers.AutoTokenizer.from_pretrained(str(model_dir))


@pytest.fixture
def render(tok):
    def _render(messages, *, tools=None, add_generation_prompt=True, **kwargs):
        return tok.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs
        )

    return _render


def user(text):
    return [{"role": "user", "content": text}]


def fn(name, parameters=None, description=""):
    f = {"name": name, "description": description}
    if parameters is not None:
        f["parameters"] = parameters
    return {"type": "function", "function": f}


WEATHER = fn(
    "get_weather",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city"],
    },
    "Weather forecast",
)
TIME = fn("get_time", {"type": "object", "properties": {}}, "Current time")
ECHO = fn("echo_text", {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]})
COMPLEX = fn(
    "book_trip",
    {
        "type": "object",
        "properties": {
            "traveller": {"$ref": "#/$defs/person"},
            "nights": {"type": "integer", "minimum": 2, "maximum": 14, "multipleOf": 2},
            "budget": {"type": "number", "exclusiveMinimum": 100},
            "refundable": {"type": "boolean"},
            "cabin": {"enum": ["economy", "business"]},
            "version": {"const": 3},
            "notes": {"anyOf": [{"type": "null"}, {"type": "string", "minLength": 5}]},
            "stops": {"type": "array", "items": {"type": "string"}, "minItems": 2, "uniqueItems": True},
            "when": {"type": "string", "format": "date"},
            "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "meta": {
                "type": "object",
                "properties": {"tags": {"type": "array", "items": {"type": "integer"}}, "source": {"type": "string"}},
                "required": ["tags"],
                "additionalProperties": False,
            },
        },
        "required": ["traveller", "nights", "budget", "refundable", "cabin", "version", "notes", "stops", "when",
                     "code", "meta"],
        "additionalProperties": False,
        "$defs": {
            "person": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 18}},
                "required": ["name", "age"],
            }
        },
    },
)

_CALL_RE = re.compile(r"<tool_call>(.*?)</tool_call>", re.S)
_ARG_RE = re.compile(r"<arg_key>(.*?)</arg_key><arg_value>(.*?)</arg_value>", re.S)


def parse_calls(text: str, tools: list[dict]) -> list[tuple[str, dict]]:
    """Parse compact GLM calls the way vLLM's glm47 parser does (strings raw, other types JSON)."""
    schemas = {t["function"]["name"]: t["function"].get("parameters") or {} for t in tools}
    calls = []
    for body in _CALL_RE.findall(text):
        name = body.split("<arg_key>", 1)[0]
        assert name == name.strip() and "\n" not in name, f"not the compact format: {body!r}"
        props = schemas[name].get("properties", {})
        args = {}
        for key, raw in _ARG_RE.findall(body):
            prop = props.get(key, {})
            if prop.get("type") == "string":
                args[key] = raw
            else:  # typed: JSON; untyped (enum, anyOf): JSON when it parses, else the raw string
                try:
                    args[key] = json.loads(raw)
                except ValueError:
                    assert "type" not in prop, (key, raw)
                    args[key] = raw
        calls.append((name, args))
    return calls


def split_think(raw: str) -> tuple[str, str]:
    assert raw.count("</think>") == 1, raw
    reasoning, answer = raw.split("</think>")
    return reasoning, answer


# --------------------------------------------------------------------------- build


def test_build_writes_a_llama_model_with_glm_eos(model_dir):
    cfg = json.loads((model_dir / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"]
    assert cfg["hidden_size"] // cfg["num_attention_heads"] == cfg["head_dim"] == 64
    assert cfg["num_hidden_layers"] == 2
    assert cfg["max_position_embeddings"] >= 1_048_576
    assert cfg["vocab_size"] == standin_build.VOCAB_SIZE
    gen = json.loads((model_dir / "generation_config.json").read_text())
    ids = standin_build.TOKEN_IDS
    assert gen["eos_token_id"] == [ids["<|endoftext|>"], ids["<|user|>"], ids["<|observation|>"]]
    header_len = int.from_bytes((model_dir / "model.safetensors").read_bytes()[:8], "little")
    header = json.loads((model_dir / "model.safetensors").read_bytes()[8 : 8 + header_len])
    assert header["lm_head.weight"]["shape"] == [cfg["vocab_size"], cfg["hidden_size"]]
    assert header["model.layers.1.self_attn.k_proj.weight"]["dtype"] == "BF16"


def test_build_is_idempotent_and_deterministic(model_dir, tmp_path):
    stamp = model_dir / standin_build.STAMP_NAME
    before = {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()}
    assert standin_build.build(model_dir) == model_dir
    assert {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()} == before
    other = standin_build.build(tmp_path / "again")
    for name in standin_build.FILES:
        assert (other / name).read_bytes() == (model_dir / name).read_bytes(), name
    assert json.loads(stamp.read_text())["hash"] == standin_build.build_hash()
    # A different option is a different build.
    small = standin_build.build(tmp_path / "small", max_position=4096)
    assert json.loads((small / "config.json").read_text())["max_position_embeddings"] == 4096
    assert not standin_build.is_built(small)


def test_build_cli(tmp_path, capsys):
    assert standin_build.main([str(tmp_path / "m"), "--max-position", "2048"]) == 0
    assert "built" in capsys.readouterr().out
    assert standin_build.main([str(tmp_path / "m"), "--max-position", "2048"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_tokenizer_is_byte_level_with_single_glm_tokens(tok):
    assert len(tok) == standin_build.VOCAB_SIZE
    text = "héllo 世界 \n\t"
    assert len(tok.encode(text, add_special_tokens=False)) == len(text.encode("utf-8"))
    for t in standin_build.TOKEN_IDS:
        assert tok.encode(t, add_special_tokens=False) == [standin_build.TOKEN_IDS[t]], t
    ids = tok.encode("<|user|>hi<|assistant|><think>r</think><tool_call>f</tool_call>", add_special_tokens=False)
    assert tok.decode(ids) == "<|user|>hi<|assistant|><think>r</think><tool_call>f</tool_call>"
    # Reasoning / tool tags survive skip_special_tokens (vLLM's parsers read them from text).
    assert tok.decode(ids, skip_special_tokens=True) == "hi<think>r</think><tool_call>f</tool_call>"
    assert tok.eos_token == "<|endoftext|>"


# --------------------------------------------------------------------------- template


@pytest.mark.parametrize(
    ("kwargs", "line"),
    [
        ({}, "Max"),
        ({"reasoning_effort": "max"}, "Max"),
        ({"reasoning_effort": "high"}, "High"),
        ({"reasoning_effort": "low"}, "Max"),
        ({"reasoning_effort": "medium"}, "Max"),
        ({"reasoning_effort": "bogus"}, "Max"),
        ({"reasoning_effort": None}, "Max"),
        ({"enable_thinking": True, "reasoning_effort": "high"}, "High"),
    ],
)
def test_effort_line(render, kwargs, line):
    prompt = render(user("hi"), **kwargs)
    assert prompt == f"[gMASK]<sop><|system|>Reasoning Effort: {line}<|user|>hi<|assistant|><think>"
    assert script.parse_prompt(prompt).effort == line


@pytest.mark.parametrize("effort", [None, "high", "max", "low"])
def test_no_effort_line_and_nonthink_prompt_when_thinking_off(render, effort):
    kwargs = {"enable_thinking": False}
    if effort:
        kwargs["reasoning_effort"] = effort
    prompt = render(user("hi"), **kwargs)
    assert prompt == "[gMASK]<sop><|user|>hi<|assistant|></think>"
    assert "Reasoning Effort" not in prompt


def test_thinking_kwarg_is_not_enable_thinking(render):
    assert render(user("hi"), thinking=False).endswith("<|assistant|><think>")


def test_tools_are_rendered_before_the_system_message(render):
    msgs = [{"role": "system", "content": "You are terse."}, *user("hi")]
    prompt = render(msgs, tools=[WEATHER, TIME])
    effort = prompt.index("Reasoning Effort: Max")
    tools = prompt.index("<tools>")
    system = prompt.index("<|system|>You are terse.")
    assert effort < tools < system < prompt.index("<|user|>hi")
    assert "<tool_call>{function-name}<arg_key>{arg-key-1}</arg_key><arg_value>" in prompt
    parsed = script.parse_prompt(prompt)
    assert [t["name"] for t in parsed.tools] == ["get_weather", "get_time"]
    assert parsed.tools[0]["parameters"] == WEATHER["function"]["parameters"]
    assert [(t.role, t.text) for t in parsed.turns] == [("system", "You are terse."), ("user", "hi")]


def test_no_generation_prompt(render):
    assert render(user("hi"), add_generation_prompt=False).endswith("<|user|>hi")


def test_history_tool_calls_observation_and_reasoning(render):
    msgs = [
        *user("weather in Paris?"),
        {
            "role": "assistant",
            "content": "Checking.",
            "reasoning_content": "need the tool",
            "tool_calls": [
                {"id": "a", "type": "function",
                 "function": {"name": "get_weather", "arguments": {"city": " Paris ", "days": 2, "opts": {"x": [1]}}}},
                {"id": "b", "type": "function", "function": {"name": "get_time", "arguments": {}}},
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "b", "content": "noon"},
        {"role": "assistant", "content": "It is sunny at noon.", "reasoning_content": "summarise"},
        *user("thanks"),
    ]
    prompt = render(msgs, tools=[WEATHER, TIME])
    call = (
        "<tool_call>get_weather<arg_key>city</arg_key><arg_value> Paris </arg_value>"
        '<arg_key>days</arg_key><arg_value>2</arg_value><arg_key>opts</arg_key><arg_value>{"x": [1]}</arg_value>'
        "</tool_call><tool_call>get_time</tool_call>"
    )
    assert "<|assistant|></think>Checking." + call in prompt
    assert "<|observation|><tool_response>sunny</tool_response><tool_response>noon</tool_response>" in prompt
    assert prompt.count("<|observation|>") == 1
    # Reasoning of earlier turns is dropped by default ...
    assert "need the tool" not in prompt and "summarise" not in prompt
    # ... and kept with clear_thinking false.
    kept = render(msgs, tools=[WEATHER, TIME], clear_thinking=False)
    assert "<|assistant|><think>need the tool</think>Checking." in kept
    assert "<|assistant|><think>summarise</think>It is sunny at noon." in kept
    parsed = script.parse_prompt(prompt)
    assert [t.role for t in parsed.turns] == ["user", "assistant", "tool", "assistant", "user"]
    assert parsed.turns[2].tool_results == ["sunny", "noon"]


def test_reasoning_of_the_current_tool_loop_is_kept(render):
    msgs = [
        *user("weather?"),
        {"role": "assistant", "content": "", "reasoning_content": "loop thought",
         "tool_calls": [{"id": "a", "type": "function", "function": {"name": "get_time", "arguments": {}}}]},
        {"role": "tool", "tool_call_id": "a", "content": "noon"},
    ]
    assert "<think>loop thought</think><tool_call>get_time</tool_call>" in render(msgs, tools=[TIME])


# --------------------------------------------------------------------------- script: reasoning


QUESTIONS = [
    "What is the capital of France?",
    "Explain photosynthesis in two sentences.",
    "Why is the sky blue?",
    "Name three prime numbers bigger than ten.",
    "How do vaccines train the immune system?",
]


def _reasoning_tokens(tok, render, q, **kwargs):
    raw = script.respond(render(user(q), **kwargs))
    reasoning, _ = split_think(raw)
    return len(tok.encode(reasoning, add_special_tokens=False))


def test_thinking_output_shape(render):
    raw = script.respond(render(user("What is the capital of France?")))
    reasoning, answer = split_think(raw)
    assert reasoning and answer
    assert "<think>" not in raw and "<tool_call>" not in raw
    assert "capital" in answer and "France" in answer


def test_reasoning_is_deterministic_and_max_about_three_times_high(tok, render):
    high = [_reasoning_tokens(tok, render, q, reasoning_effort="high") for q in QUESTIONS]
    maxi = [_reasoning_tokens(tok, render, q) for q in QUESTIONS]
    assert maxi == [_reasoning_tokens(tok, render, q, reasoning_effort="max") for q in QUESTIONS]
    assert maxi == [_reasoning_tokens(tok, render, q, reasoning_effort="low") for q in QUESTIONS]
    for h, m in zip(high, maxi):
        assert 2.5 <= m / h <= 3.5, (h, m)
    assert len(set(high)) > 1, "reasoning length should depend on the prompt"
    assert script.respond(render(user(QUESTIONS[0]))) == script.respond(render(user(QUESTIONS[0])))


def test_non_think_has_no_reasoning(render):
    raw = script.respond(render(user("Why is the sky blue?"), enable_thinking=False))
    assert "</think>" not in raw and "<think>" not in raw
    assert "sky" in raw


# --------------------------------------------------------------------------- script: tools


def _calls(render, text, tools, **kwargs):
    raw = script.respond(render(user(text), tools=tools), **kwargs)
    _, answer = split_think(raw)
    return answer, parse_calls(answer, tools)


def _assert_valid(calls, tools):
    schemas = {t["function"]["name"]: t["function"].get("parameters") or {"type": "object"} for t in tools}
    for name, args in calls:
        jsonschema.validate(args, schemas[name])


def test_named_tool_with_hinted_typed_arguments(render):
    answer, calls = _calls(render, "What's the weather in city Paris for days 3 in fahrenheit? Use get_weather.",
                           [WEATHER, TIME])
    assert calls == [("get_weather", {"city": "Paris", "days": 3, "unit": "fahrenheit"})]
    assert answer.startswith("I'll call get_weather")
    assert answer.endswith("</tool_call>")
    _assert_valid(calls, [WEATHER, TIME])


def test_parallel_calls_in_order_of_mention(render):
    _, calls = _calls(render, "First get_time, then get_weather for city Oslo.", [WEATHER, TIME])
    assert [c[0] for c in calls] == ["get_time", "get_weather"]
    assert calls[0] == ("get_time", {})
    _assert_valid(calls, [WEATHER, TIME])


def test_unnamed_tool_defaults_to_first_and_zero_arg_format(render):
    _, calls = _calls(render, "Hello there", [TIME, WEATHER])
    assert calls == [("get_time", {})]
    raw = script.respond(render(user("Hello there"), tools=[TIME, WEATHER]))
    assert raw.endswith("<tool_call>get_time</tool_call>")


def test_tool_names_match_whole_words_only(render):
    tools = [fn("get_weather_forecast", {"type": "object", "properties": {}}), WEATHER]
    _, calls = _calls(render, "use get_weather_forecast", tools)
    assert [c[0] for c in calls] == ["get_weather_forecast"]


def test_complex_schema_arguments_validate(render):
    for text in ["book_trip please", "book_trip with nights 4 and cabin business and code=\"OSL\""]:
        _, calls = _calls(render, text, [COMPLEX])
        assert len(calls) == 1
        _assert_valid(calls, [COMPLEX])
    assert calls[0][1]["nights"] == 4 and calls[0][1]["cabin"] == "business" and calls[0][1]["code"] == "OSL"


@pytest.mark.parametrize(
    "value",
    ["  leading and trailing  ", "Grüße, 世界! ✓", "line one\nline two\n", "\ttab\t", "quote \" and \\ backslash", "42"],
)
def test_exact_string_convention(render, value):
    text = f"Please call echo_text with text={json.dumps(value, ensure_ascii=False)} exactly."
    _, calls = _calls(render, text, [ECHO])
    assert calls == [("echo_text", {"text": value})]


def test_invalid_hint_is_ignored(render):
    _, calls = _calls(render, "get_weather for days 99 in city Rome", [WEATHER])
    assert calls[0][1]["city"] == "Rome"
    assert 1 <= calls[0][1]["days"] <= 7
    _assert_valid(calls, [WEATHER])


def test_tool_result_turn_answers_from_result(render):
    msgs = [
        *user("weather in city Paris? use get_weather"),
        {"role": "assistant", "content": "",
         "tool_calls": [{"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "a", "content": "Sunny, 21 C"},
    ]
    raw = script.respond(render(msgs, tools=[WEATHER]))
    _, answer = split_think(raw)
    assert answer == "The result is: Sunny, 21 C."
    # Required tool choice keeps calling.
    raw = script.respond(render(msgs, tools=[WEATHER]), tool_required=True, allowed_tools=["get_weather"])
    assert split_think(raw)[1].startswith("<tool_call>get_weather")


def test_required_and_named_tool_choice(render):
    text = "weather for city Oslo, and get_time"
    raw = script.respond(render(user(text), tools=[WEATHER, TIME]), tool_required=True, allowed_tools=["get_weather", "get_time"])
    answer = split_think(raw)[1]
    assert answer.startswith("<tool_call>"), "a grammar-forced answer has no preamble"
    assert [c[0] for c in parse_calls(answer, [WEATHER, TIME])] == ["get_time"]
    raw = script.respond(render(user(text), tools=[WEATHER, TIME]), tool_required=True, allowed_tools=["get_weather"],
                         single_tool_call=True)
    calls = parse_calls(split_think(raw)[1], [WEATHER, TIME])
    assert calls == [("get_weather", {"city": "Oslo"})]
    raw = script.respond(render(user("use get_weather and get_time"), tools=[WEATHER, TIME]), single_tool_call=True)
    assert len(parse_calls(raw, [WEATHER, TIME])) == 1


def test_tools_non_think(render):
    raw = script.respond(render(user("get_time"), tools=[TIME], enable_thinking=False))
    assert "</think>" not in raw and raw.endswith("<tool_call>get_time</tool_call>")


# --------------------------------------------------------------------------- script: structured, needle, GSM8K


def test_json_schema_output(render):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0},
                       "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["name", "age"],
    }
    raw = script.respond(render(user('Make a person with name="Alice" and age 30')), json_schema=schema)
    _, answer = split_think(raw)
    assert "<" not in answer and " " not in answer.replace("Alice", "")
    value = json.loads(answer)
    jsonschema.validate(value, schema)
    assert value["name"] == "Alice" and value["age"] == 30
    free = script.respond(render(user("json please"), enable_thinking=False), json_schema={"type": "object"})
    assert isinstance(json.loads(free), dict) and json.loads(free)


def test_json_schema_wins_over_tools(render):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    raw = script.respond(render(user("get_time"), tools=[TIME], enable_thinking=False), json_schema=schema)
    assert json.loads(raw) == {"ok": True}


def _haystack(needle: str) -> str:
    filler = " ".join(f"Sentence {i} talks about rivers and stones." for i in range(200))
    half = len(filler) // 2
    return filler[:half] + " " + needle + " " + filler[half:]


def test_needle(render):
    needle = script.NEEDLE_TEMPLATE.format(passphrase="violet-anchor-5531")
    prompt = render(user(_haystack(needle) + "\nWhat is the secret passphrase?"))
    _, answer = split_think(script.respond(prompt))
    assert "violet-anchor-5531" in answer
    wrong = script.respond(prompt, faults=frozenset({"wrong_answers"}))
    assert "violet-anchor-5531" not in wrong and "violet-anchor-553" in wrong
    # No question about it: no passphrase in the answer.
    assert "violet" not in split_think(script.respond(render(user(_haystack(needle) + "\nSummarise."))))[1]


def test_needle_in_an_earlier_message(render):
    msgs = [
        {"role": "system", "content": _haystack(script.NEEDLE_TEMPLATE.format(passphrase="Red Kite.42"))},
        *user("Tell me the passphrase."),
    ]
    raw = script.respond(render(msgs, enable_thinking=False))
    assert raw == "The secret passphrase is Red Kite.42."


@pytest.fixture
def gsm8k_file(tmp_path, monkeypatch):
    path = tmp_path / "test.jsonl"
    rows = [
        {"question": "Tom has 3 apples and buys 4 more. How many apples does he have?",
         "answer": "Tom has 3 + 4 = <<3+4=7>>7 apples.\n#### 7"},
        {"question": "A box holds 12 eggs. How many eggs are in 10 boxes?",
         "answer": "10 * 12 = <<10*12=120>>120 eggs.\n#### 120"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    monkeypatch.setenv(script.GSM8K_ENV, str(path))
    return rows


def test_gsm8k_lookup_and_wrong_answers(render, gsm8k_file):
    q = gsm8k_file[1]["question"]
    reasoning, answer = split_think(script.respond(render(user(q + "\nThink step by step."))))
    assert answer.endswith("The answer is 120.")
    assert "10 * 12 = 120 eggs." in reasoning and "<<" not in reasoning
    wrong = script.respond(render(user(q)), faults=frozenset({"wrong_answers"}))
    assert wrong.endswith("The answer is 121.")
    # Whitespace differences do not matter; an unknown question is not looked up.
    assert script.respond(render(user("  A box holds 12 eggs.\nHow many eggs are in 10 boxes?  "),
                                 enable_thinking=False)).endswith("The answer is 120.")
    assert "The answer is" not in script.respond(render(user("How many eggs in 11 boxes?"), enable_thinking=False))


def test_gsm8k_default_path_is_next_to_the_repo(monkeypatch):
    monkeypatch.delenv(script.GSM8K_ENV, raising=False)
    repo_root = Path(script.__file__).resolve().parents[2]
    assert script.gsm8k_path() == repo_root.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
    if not script.gsm8k_path().is_file():
        need("the shared GSM8K test set is not on this machine")
    first = json.loads(script.gsm8k_path().read_text().splitlines()[0])
    found = script.gsm8k_lookup(first["question"])
    assert found is not None and found[1] == first["answer"].split("####")[-1].strip().replace(",", "")


# --------------------------------------------------------------------------- faults


def test_fault_names_parse():
    assert script.parse_faults(" wrong_answers, skip_think_end ,,") == {"wrong_answers", "skip_think_end"}
    assert script.parse_faults(None) == frozenset()
    assert {"wrong_answers", "skip_think_end", "script_canary", "ignore_effort"} <= script.FAULTS


def test_fault_skip_think_end(render):
    raw = script.respond(render(user("Why is the sky blue?")), faults=frozenset({"skip_think_end"}))
    assert "</think>" not in raw and "sky blue" in raw


def test_fault_script_canary(render):
    raw = script.respond(render(user("hi there")), faults=frozenset({"script_canary"}))
    assert split_think(raw)[1].endswith(script.CANARY)
    raw = script.respond(render(user("get_time"), tools=[TIME]), faults=frozenset({"script_canary"}))
    assert script.CANARY in split_think(raw)[1] and raw.endswith("<tool_call>get_time</tool_call>")
    # Never inside grammar-constrained output.
    raw = script.respond(render(user("x"), enable_thinking=False), json_schema={"type": "object"},
                         faults=frozenset({"script_canary"}))
    assert script.CANARY not in raw


def test_fault_ignore_effort(tok, render):
    q = "Why is the sky blue?"
    high = script.respond(render(user(q), reasoning_effort="high"), faults=frozenset({"ignore_effort"}))
    assert high == script.respond(render(user(q)), faults=frozenset({"ignore_effort"}))
    assert len(high) > len(script.respond(render(user(q), reasoning_effort="high")))


def test_fault_empty_reasoning_and_no_tool_call_and_strip(render):
    assert script.respond(render(user("hi")), faults=frozenset({"empty_reasoning"})).startswith("</think>")
    raw = script.respond(render(user("get_time"), tools=[TIME]), faults=frozenset({"no_tool_call"}))
    assert "<tool_call>" not in raw
    raw = script.respond(render(user("get_time"), tools=[TIME]), faults=frozenset({"no_tool_call"}), tool_required=True,
                         allowed_tools=["get_time"])
    assert "<tool_call>get_time</tool_call>" in raw
    raw = script.respond(render(user('echo_text text="  x  "'), tools=[ECHO]), faults=frozenset({"strip_arg_whitespace"}))
    assert parse_calls(raw, [ECHO]) == [("echo_text", {"text": "x"})]


# --------------------------------------------------------------------------- script: sampling

Sampling = script.Sampling


def _sampled(seed: int) -> script.Sampling:
    return Sampling(random.Random(seed))


def _reasoning_chars(raw: str) -> int:
    return len(split_think(raw)[0])


def test_sampling_none_is_the_scripted_output(render):
    for q in QUESTIONS:
        prompt = render(user(q))
        want = script.respond(prompt)
        assert script.respond(prompt, sampling=None) == want
        assert script.respond(prompt, sampling=Sampling()) == want  # no rng, not greedy: scripted
        assert script.generate(prompt) == script.Response(want)


def test_sampled_reasoning_varies_per_request_and_stays_plain(render):
    prompt = render(user(QUESTIONS[1]))
    raws = [script.respond(prompt, sampling=_sampled(i)) for i in range(40)]
    assert len({_reasoning_chars(r) for r in raws}) > 10, "reasoning length should vary request to request"
    assert script.respond(prompt, sampling=_sampled(3)) == raws[3], "same rng seed, same output"
    answer = split_think(script.respond(prompt))[1]
    for raw in raws:
        reasoning, sampled_answer = split_think(raw)
        assert "<" not in reasoning and ">" not in reasoning and "\n" not in reasoning
        assert reasoning.startswith("The user is asking about")
        assert sampled_answer.startswith(answer)  # plus, at most, one closing sentence
        assert len(sampled_answer) - len(answer) < 60


def test_sampled_max_reasoning_is_about_twice_high_and_overlaps(render):
    high: list[int] = []
    maxi: list[int] = []
    for q in QUESTIONS:
        for i in range(200):
            high.append(_reasoning_chars(script.respond(render(user(q), reasoning_effort="high"), sampling=_sampled(i))))
            maxi.append(_reasoning_chars(script.respond(render(user(q)), sampling=_sampled(10_000 + i))))
    ratio = statistics.mean(high) / statistics.mean(maxi)
    assert 0.4 <= ratio <= 0.6, ratio
    assert max(high) > min(maxi), "the High and Max distributions should overlap"
    assert 150 <= statistics.mean(maxi) <= 700, statistics.mean(maxi)  # modest: CPU decode time
    # ignore_effort: High draws from the Max distribution.
    ignored = [_reasoning_chars(script.respond(render(user(q), reasoning_effort="high"), sampling=_sampled(i),
                                               faults=frozenset({"ignore_effort"})))
               for q in QUESTIONS for i in range(200)]
    assert 0.85 <= statistics.mean(ignored) / statistics.mean(maxi) <= 1.15


def test_sampled_keeps_calls_json_needle_and_tool_results(render):
    tool_prompt = render(user("What's the weather in city Paris for days 3? Use get_weather and get_time."),
                         tools=[WEATHER, TIME])
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    json_prompt = render(user('Make a person with name="Alice"'))
    needle_prompt = render(user(_haystack(script.NEEDLE_TEMPLATE.format(passphrase="teal-otter-77"))
                                + "\nWhat is the secret passphrase?"))
    msgs = [
        *user("weather in city Paris? use get_weather"),
        {"role": "assistant", "content": "",
         "tool_calls": [{"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "a", "content": "Sunny, 21 C"},
    ]
    result_prompt = render(msgs, tools=[WEATHER])
    cases = [(tool_prompt, {}), (json_prompt, {"json_schema": schema}), (needle_prompt, {}), (result_prompt, {}),
             (tool_prompt, {"tool_required": True, "allowed_tools": ["get_time"]})]
    by_name = lambda calls: sorted(calls, key=lambda c: c[0])  # noqa: E731 - parallel order is sampled
    for prompt, kwargs in cases:
        want = split_think(script.respond(prompt, **kwargs))[1]
        lengths = set()
        for i in range(20):
            reasoning, answer = split_think(script.respond(prompt, sampling=_sampled(i), **kwargs))
            if prompt is tool_prompt and not kwargs:  # how the turn is written is sampled, the arguments are not
                assert by_name(parse_calls(answer, [WEATHER, TIME])) == by_name(parse_calls(want, [WEATHER, TIME]))
            else:
                assert answer == want
            lengths.add(len(reasoning))
        assert len(lengths) > 3
    off = render(user("get_time please"), tools=[TIME], enable_thinking=False)
    answers = {script.respond(off, sampling=_sampled(i)) for i in range(40)}
    assert all(parse_calls(a, [TIME]) in ([("get_time", {})], []) for a in answers)
    assert all("<tool_call>" in a or a.startswith("Before I call get_time") for a in answers)


def test_sampled_tool_behaviour_rates(render):
    """Parallel order, the sentence before the call, a clarifying question for a lone auto call:
    at the rates ``sampling`` documents; never under a grammar; the arguments always the scripted ones."""
    from glmverify.standin import sampling as smp

    two = render(user("Call get_weather for city Tokyo and days 2, and also call get_time."), tools=[WEATHER, TIME])
    lone = render(user("What time is it? Use get_time."), tools=[WEATHER, TIME])
    n = 1500
    answers = [split_think(script.respond(two, sampling=_sampled(i)))[1] for i in range(n)]
    calls = [parse_calls(a, [WEATHER, TIME]) for a in answers]
    swapped = sum([c[0] for c in cs] == ["get_time", "get_weather"] for cs in calls) / n
    assert abs(swapped - smp.P_PARALLEL_REORDER) < 0.04
    assert {tuple(sorted(c[0] for c in cs)) for cs in calls} == {("get_time", "get_weather")}
    bare = sum(a.startswith("<tool_call>") for a in answers) / n
    assert abs(bare - (1 - smp.P_PREAMBLE)) < 0.05
    ends = {a.split("for this.", 1)[1][:2] for a in answers if "for this." in a}
    assert ends == {"\n<", "\n\n", " <"}
    lone_answers = [split_think(script.respond(lone, sampling=_sampled(10_000 + i)))[1] for i in range(4000)]
    asked = sum("<tool_call>" not in a for a in lone_answers) / len(lone_answers)
    assert abs(asked - smp.P_CLARIFY) < 0.01
    forced = {split_think(script.respond(lone, sampling=_sampled(i), tool_required=True, allowed_tools=["get_time"]))[1]
              for i in range(200)}
    assert forced == {"<tool_call>get_time</tool_call>"}


def test_fault_wrong_tool(render):
    raw = script.respond(render(user("What time is it? Use get_time."), tools=[WEATHER, TIME]), faults=frozenset({"wrong_tool"}))
    assert [c[0] for c in parse_calls(raw, [WEATHER, TIME])] == ["get_weather"]
    raw = script.respond(render(user("Call get_weather for city Oslo and also get_time."), tools=[WEATHER, TIME]),
                         faults=frozenset({"wrong_tool"}))
    assert [c[0] for c in parse_calls(raw, [WEATHER, TIME])] == ["get_weather"]   # every tool asked for: one fewer


@pytest.fixture
def gsm8k_many(tmp_path, monkeypatch):
    """200 distinct questions (question i: i + 7)."""
    path = tmp_path / "many.jsonl"
    rows = [{"question": f"Sam has {i} marbles and finds 7 more in box {i}. How many marbles does Sam have?",
             "answer": f"Sam has {i} + 7 = <<{i}+7={i + 7}>>{i + 7} marbles.\n#### {i + 7}"} for i in range(200)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    monkeypatch.setenv(script.GSM8K_ENV, str(path))
    return rows


def _gsm8k_wrong_rate(render, gsm8k_file, n=2000, faults=frozenset(), **kwargs) -> float:
    prompt = render(user(gsm8k_file[1]["question"]), **kwargs)
    wrong = 0
    for i in range(n):
        raw = script.respond(prompt, sampling=_sampled(i), faults=faults)
        assert raw.endswith(("The answer is 120.", "The answer is 121."))
        wrong += raw.endswith("The answer is 121.")
    return wrong / n


def test_sampled_gsm8k_wrong_rates(render, gsm8k_file):
    assert script.P_WRONG_THINK == 0.03 and script.P_WRONG_NONTHINK == 0.06
    assert 0.018 <= _gsm8k_wrong_rate(render, gsm8k_file) <= 0.045
    assert 0.04 <= _gsm8k_wrong_rate(render, gsm8k_file, enable_thinking=False) <= 0.085
    assert 0.17 <= _gsm8k_wrong_rate(render, gsm8k_file, faults=frozenset({"low_accuracy"})) <= 0.23
    assert _gsm8k_wrong_rate(render, gsm8k_file, n=50, faults=frozenset({"wrong_answers"})) == 1.0
    # The gold rationale scales with effort like any reasoning.
    q = gsm8k_file[1]["question"]
    high = [_reasoning_chars(script.respond(render(user(q), reasoning_effort="high"), sampling=_sampled(i)))
            for i in range(300)]
    maxi = [_reasoning_chars(script.respond(render(user(q)), sampling=_sampled(i))) for i in range(300)]
    assert 0.4 <= statistics.mean(high) / statistics.mean(maxi) <= 0.6
    assert all("10 * 12 = 120 eggs." in split_think(script.respond(render(user(q)), sampling=_sampled(i)))[0]
               for i in range(20))


def test_low_accuracy_without_sampling_misses_every_fifth_question(render, gsm8k_many):
    faults = frozenset({"low_accuracy"})
    wrong = 0
    for row in gsm8k_many:
        gold = row["answer"].split("#### ")[1]
        prompt = render(user(row["question"]))
        raw = script.respond(prompt, faults=faults)
        greedy = script.generate(prompt, faults=faults, sampling=Sampling(greedy=True))
        assert greedy.loop or greedy.text == raw  # greedy is the scripted output (unless it loops)
        assert script.respond(prompt).endswith(f"The answer is {gold}.")
        wrong += not raw.endswith(f"The answer is {gold}.")
    assert 0.12 <= wrong / len(gsm8k_many) <= 0.28, wrong


def test_greedy_is_scripted_but_loops_on_a_fifth_of_thinking_prompts(render):
    greedy = Sampling(greedy=True)
    loops = 0
    prompts = [render(user(f"Question {i}: what do rivers {i} and stones {i * 3} have in common?")) for i in range(300)]
    for prompt in prompts:
        resp = script.generate(prompt, sampling=greedy)
        assert script.generate(prompt, sampling=greedy) == resp, "greedy is deterministic"
        if resp.loop is None:
            assert resp.text == script.respond(prompt)
            continue
        loops += 1
        scripted = split_think(script.respond(prompt))[0]
        assert "</think>" not in resp.text and scripted.startswith(resp.text)
        assert resp.loop.startswith(" ") and resp.text.endswith(resp.loop[1:])  # the last sentence again
        assert script.respond(prompt, sampling=greedy) == resp.text
    assert 0.12 <= loops / len(prompts) <= 0.28, loops
    for prompt in prompts[:100]:
        nonthink = prompt.replace("<|system|>Reasoning Effort: Max", "").replace("<|assistant|><think>",
                                                                               "<|assistant|></think>")
        assert script.generate(nonthink, sampling=greedy) == script.Response(script.respond(nonthink))


def test_fault_ignore_thinking_off(render):
    faults = frozenset({"ignore_thinking_off"})
    q = QUESTIONS[4]
    on = script.respond(render(user(q)))
    off = script.respond(render(user(q), enable_thinking=False), faults=faults)
    assert "<" not in off and ">" not in off
    assert off.endswith(script.respond(render(user(q), enable_thinking=False)))
    assert abs(len(off) - len(on)) <= 10, (len(off), len(on))
    # Sampled: as long as thinking on, on average.
    off_lens = [len(script.respond(render(user(q), enable_thinking=False), faults=faults, sampling=_sampled(i)))
                for i in range(200)]
    on_lens = [len(script.respond(render(user(q)), sampling=_sampled(1000 + i))) for i in range(200)]
    assert 0.85 <= statistics.mean(off_lens) / statistics.mean(on_lens) <= 1.15
    # Never inside a grammar-constrained answer.
    raw = script.respond(render(user("x"), enable_thinking=False), json_schema={"type": "object"}, faults=faults)
    assert json.loads(raw)


def test_sampling_settings():
    assert script.SAMPLING_ENV == "GLM_STANDIN_SAMPLING" and script.SEED_ENV == "GLM_STANDIN_SEED"
    assert script.sampling_enabled(None) and script.sampling_enabled("on") and not script.sampling_enabled("off")
    with pytest.raises(ValueError):
        script.sampling_enabled("maybe")
    assert script.engine_seed("42") == 42
    assert script.engine_seed(None) != script.engine_seed(None)
    with pytest.raises(ValueError):
        script.engine_seed("x")
    a, b = script.request_rng(7, "p"), script.request_rng(7, "p")
    assert a.random() == b.random()
    assert script.request_rng(7, "p").random() != script.request_rng(8, "p").random()
    assert {"low_accuracy", "ignore_thinking_off"} <= script.FAULTS


# --------------------------------------------------------------------------- processor (no server)


def test_processor_forces_the_script_through_batch_changes(model_dir, render, monkeypatch):
    need_module("vllm")
    monkeypatch.setenv(script.SAMPLING_ENV, "off")  # exact scripted output at any temperature
    torch = need_module("torch")
    from types import SimpleNamespace

    from vllm import SamplingParams
    from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality

    from glmverify.standin.processor import GLMStandInProcessor

    cfg = SimpleNamespace(model_config=SimpleNamespace(tokenizer=str(model_dir), model=str(model_dir)))
    proc = GLMStandInProcessor(cfg, torch.device("cpu"), False)
    tok = proc.tokenizer
    prompts = [render(user("Why is the sky blue?")), render(user("get_time please"), tools=[TIME]),
               render(user("hello"), enable_thinking=False)]
    want = [script.respond(p) for p in prompts]
    outs: list[list[int]] = [[], [], []]
    params = SamplingParams(max_tokens=4096)
    added = [(i, params, tok.encode(p, add_special_tokens=False).ids, outs[i]) for i, p in enumerate(prompts)]
    proc.update_state(BatchUpdate(batch_size=3, removed=[], added=added, moved=[]))
    slot = {0: 0, 1: 1, 2: 2}  # request -> batch row
    done: set[int] = set()
    step = 0
    while len(done) < 3:
        step += 1
        if step == 5:  # rows 0 and 2 swap
            proc.update_state(BatchUpdate(batch_size=3, removed=[], added=[], moved=[(0, 2, MoveDirectionality.SWAP)]))
            slot[0], slot[2] = 2, 0
        proc.update_state(None)
        logits = torch.randn(3, proc.tokenizer.get_vocab_size())
        logits = proc.apply(logits)
        for req, row in list(slot.items()):
            finite = torch.isfinite(logits[row]).nonzero().flatten().tolist()
            assert len(finite) == 1
            outs[req].append(finite[0])
            if finite[0] in (proc.end_answer, proc.end_tools):
                done.add(req)
                del slot[req]
                proc.update_state(BatchUpdate(batch_size=len(slot), removed=[row], added=[], moved=[]))
                if slot:  # condense: move the last row into the hole, as vLLM does
                    last_req = max(slot, key=slot.get)
                    if slot[last_req] > row:
                        proc.update_state(BatchUpdate(batch_size=len(slot), removed=[], added=[],
                                                      moved=[(slot[last_req], row, MoveDirectionality.UNIDIRECTIONAL)]))
                        slot[last_req] = row
    for i in range(3):
        assert tok.decode(outs[i][:-1], skip_special_tokens=False) == want[i]
    assert outs[1][-1] == proc.end_tools and outs[0][-1] == proc.end_answer


def _processor(model_dir, monkeypatch, **env):
    """A processor for the stand-in model, built with ``env`` set."""
    from types import SimpleNamespace

    import torch

    from glmverify.standin.processor import GLMStandInProcessor

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cfg = SimpleNamespace(model_config=SimpleNamespace(tokenizer=str(model_dir), model=str(model_dir)))
    return GLMStandInProcessor(cfg, torch.device("cpu"), False)


def _decode_one(proc, prompt: str, params, max_steps: int) -> list[int]:
    """One request alone in the batch (row 0), decoded until end of turn or ``max_steps`` tokens."""
    import torch
    from vllm.v1.sample.logits_processor import BatchUpdate

    out: list[int] = []
    ids = proc.tokenizer.encode(prompt, add_special_tokens=False).ids
    proc.update_state(BatchUpdate(batch_size=1, removed=[], added=[(0, params, ids, out)], moved=[]))
    while len(out) < max_steps:
        logits = proc.apply(torch.zeros(1, proc.tokenizer.get_vocab_size()))
        finite = torch.isfinite(logits[0]).nonzero().flatten().tolist()
        assert len(finite) == 1
        out.append(finite[0])
        if finite[0] in (proc.end_answer, proc.end_tools):
            break
    proc.update_state(BatchUpdate(batch_size=0, removed=[0], added=[], moved=[]))
    return out


def test_processor_greedy_loops_until_max_tokens(model_dir, render, monkeypatch):
    need_module("vllm")
    from vllm import SamplingParams

    proc = _processor(model_dir, monkeypatch, **{script.SEED_ENV: "1234"})
    greedy_params = SamplingParams(temperature=0.0, max_tokens=4096)
    greedy = Sampling(greedy=True)
    prompts = [render(user(f"Question {i}: what do rivers {i} and stones {i * 3} have in common?")) for i in range(40)]
    looping = next(p for p in prompts if script.generate(p, sampling=greedy).loop)
    plain = next(p for p in prompts if not script.generate(p, sampling=greedy).loop)
    resp = script.generate(looping, sampling=greedy)
    n = len(resp.text) + 5 * len(resp.loop) + 3  # ASCII: one token per character
    out = _decode_one(proc, looping, greedy_params, n)
    assert len(out) == n and proc.end_answer not in out and proc.end_tools not in out
    assert proc.tokenizer.decode(out, skip_special_tokens=False) == (resp.text + resp.loop * 6)[:n]
    out = _decode_one(proc, plain, greedy_params, 5000)
    assert proc.tokenizer.decode(out[:-1], skip_special_tokens=False) == script.respond(plain)
    assert out[-1] == proc.end_answer
    # Sampling off: the scripted output at temperature 0 too; no loop.
    off = _processor(model_dir, monkeypatch, **{script.SAMPLING_ENV: "off"})
    out = _decode_one(off, looping, greedy_params, 5000)
    assert off.tokenizer.decode(out[:-1], skip_special_tokens=False) == script.respond(looping)


def test_processor_sampled_requests(model_dir, render, monkeypatch):
    need_module("vllm")
    from vllm import SamplingParams

    proc = _processor(model_dir, monkeypatch, **{script.SEED_ENV: "1234"})
    prompt = render(user(QUESTIONS[1]))
    # A seeded request is reproducible: the rng comes from (seed, prompt).
    seeded = SamplingParams(seed=7, max_tokens=4096)
    first = _decode_one(proc, prompt, seeded, 5000)
    assert _decode_one(proc, prompt, seeded, 5000) == first
    want = script.respond(prompt, sampling=Sampling(script.request_rng(7, prompt)))
    assert proc.tokenizer.decode(first[:-1], skip_special_tokens=False) == want
    # Unseeded requests vary, and the engine seed reproduces the sequence.
    params = SamplingParams(max_tokens=4096)
    runs = [_decode_one(proc, prompt, params, 5000) for _ in range(6)]
    assert len({tuple(r) for r in runs}) > 1
    again = _processor(model_dir, monkeypatch, **{script.SEED_ENV: "1234"})
    assert [_decode_one(again, prompt, params, 5000) for _ in range(6)] == runs
    # Per-request faults reach the new faults too.
    nonthink = render(user(QUESTIONS[1]), enable_thinking=False)
    faulty = SamplingParams(temperature=0.0, max_tokens=4096, extra_args={"glm_standin_faults": "ignore_thinking_off"})
    out = _decode_one(proc, nonthink, faulty, 5000)
    want = script.respond(nonthink, faults=frozenset({"ignore_thinking_off"}))
    assert proc.tokenizer.decode(out[:-1], skip_special_tokens=False) == want
    assert len(want) > 2 * len(script.respond(nonthink))


def test_processor_reads_structural_tags():
    need_module("vllm")
    from glmverify.standin.processor import tool_constraint

    def tag(name, content=None):
        return {"type": "tag", "begin": f"<tool_call>{name}", "content": content or {"type": "any_text"},
                "end": "</tool_call>"}

    required = {"type": "structural_tag", "format": {"type": "tags_with_separator", "tags": [tag("a"), tag("b")],
                                                       "separator": "", "at_least_one": True, "stop_after_first": False}}
    assert tool_constraint(json.dumps(required)) == (True, ["a", "b"], False)
    named = {"type": "structural_tag", "format": {"type": "tags_with_separator", "tags": [tag("b")], "separator": "",
                                                    "at_least_one": True, "stop_after_first": True}}
    assert tool_constraint(named) == (True, ["b"], True)
    strict_named = {"type": "structural_tag", "format": tag("b", {"type": "json_schema", "json_schema": {}})}
    assert tool_constraint(strict_named) == (True, ["b"], True)
    auto = {"type": "structural_tag", "format": {"type": "triggered_tags", "triggers": ["<tool_call>"],
                                                   "tags": [tag("a")], "at_least_one": False, "stop_after_first": True}}
    assert tool_constraint(auto) == (False, ["a"], True)
    assert tool_constraint(None) == (False, None, False)
    assert tool_constraint(json.dumps({"type": "structural_tag", "format": {"type": "any_text"}})) == (False, None, False)


# --------------------------------------------------------------------------- the SGLang hook
def _sglang_req(tok, prompt: str, **sampling):
    """A stand-in for SGLang's ``Req``: the fields the plugin reads (prompt ids, output ids, params)."""
    from types import SimpleNamespace

    sp = SimpleNamespace(temperature=1.0, sampling_seed=None, min_new_tokens=0, json_schema=None,
                         structural_tag=None, custom_params={}, **sampling)
    return SimpleNamespace(origin_input_ids=tok.encode(prompt, add_special_tokens=False).ids, output_ids=[],
                           sampling_params=sp)


def test_sglang_processor_forces_the_script_row_by_row(model_dir, render, monkeypatch):
    """Two requests in one batch, one joining late: each row gets exactly its own scripted output,
    positioned by its own output_ids, ending with the right end-of-turn token; per-request faults
    come from custom_params."""
    torch = need_module("torch")
    monkeypatch.setenv(script.SAMPLING_ENV, "off")
    monkeypatch.setenv("GLM_STANDIN_TOKENIZER", str(model_dir))
    from glmverify.standin import sglang_plugin

    monkeypatch.setattr(sglang_plugin, "_scripter", None)
    proc = sglang_plugin.GLMStandInLogitProcessor()
    s = sglang_plugin.scripter()
    tok = s.tokenizer
    prompts = [render(user("Why is the sky blue?")), render(user("get_time please"), tools=[TIME])]
    reqs = [_sglang_req(tok, prompts[0]), _sglang_req(tok, prompts[1])]
    faulty = _sglang_req(tok, prompts[0], )
    faulty.sampling_params.custom_params = {"glm_standin_faults": "skip_think_end"}
    active = [reqs[0]]
    done = []
    for step in range(4000):
        if step == 3:
            active += [reqs[1], faulty]
        if not active:
            break
        logits = proc(torch.zeros(len(active), tok.get_vocab_size()), [{"__req__": r} for r in active])
        for row, r in enumerate(list(active)):
            finite = torch.isfinite(logits[row]).nonzero().flatten().tolist()
            assert len(finite) == 1
            r.output_ids.append(finite[0])
        for r in [r for r in active if r.output_ids[-1] in (s.end_answer, s.end_tools)]:
            active.remove(r)
            done.append(r)
    assert len(done) == 3
    assert tok.decode(reqs[0].output_ids[:-1], skip_special_tokens=False) == script.respond(prompts[0])
    assert tok.decode(reqs[1].output_ids[:-1], skip_special_tokens=False) == script.respond(prompts[1])
    assert reqs[0].output_ids[-1] == s.end_answer and reqs[1].output_ids[-1] == s.end_tools
    want = script.respond(prompts[0], faults=frozenset({"skip_think_end"}))
    assert tok.decode(faulty.output_ids[:-1], skip_special_tokens=False) == want and "</think>" not in want


def test_sglang_constraints_read_sglang_sampling_params():
    from types import SimpleNamespace

    from glmverify.standin.sglang_plugin import constraints

    tag = {"type": "structural_tag", "format": {"type": "tags_with_separator", "at_least_one": True,
           "stop_after_first": True, "tags": [{"begin": "<tool_call>get_time", "content": {"type": "any_text"}, "end": "</tool_call>"}]}}
    sp = SimpleNamespace(temperature=0.0, sampling_seed=7, min_new_tokens=3, json_schema=None,
                         structural_tag=json.dumps(tag), custom_params={"glm_standin_faults": "no_tool_call"})
    c = constraints(sp)
    assert (c.temperature, c.seed, c.min_tokens, c.faults) == (0.0, 7, 3, "no_tool_call")
    assert (c.tool_required, c.allowed_tools, c.single_tool_call) == (True, ["get_time"], True)
    js = constraints(SimpleNamespace(temperature=1.0, json_schema='{"type": "object"}', custom_params=None))
    assert js.json_schema == {"type": "object"} and js.faults is None and not js.tool_required
    # a temperature-0 request as SGLang's SamplingParams leaves it (temperature 1.0, top_k 1) is greedy
    assert constraints(SimpleNamespace(temperature=1.0, top_k=1, custom_params=None)).temperature == 0.0
    assert constraints(SimpleNamespace(temperature=1.0, top_k=-1, custom_params=None)).temperature == 1.0


# --------------------------------------------------------------------------- profile


def test_build_writes_the_profile_and_glm52_is_the_default(model_dir):
    from glmverify.standin import profile

    data = json.loads((model_dir / profile.CONFIG_NAME).read_text())
    assert profile.StandinProfile.from_json(data) == profile.GLM_52 == profile.load(model_dir)
    assert profile.load(model_dir.parent) == profile.GLM_52  # no profile file: GLM-5.2
    assert standin_build.build_hash() == standin_build.build_hash(profile=profile.GLM_52)


def test_profile_is_validated_before_it_reaches_the_template():
    from dataclasses import replace

    from glmverify.standin.profile import GLM_52

    for bad in ({"default": "ultra"}, {"fallback": "none"}, {"effort_variable": "effort}}{{"},
                {"system_line": "Effort"}, {"levels": (("max", "Max"), ("max", "High"))}, {"levels": ()}):
        with pytest.raises(ValueError):
            replace(GLM_52, **bad)


def test_a_profile_changes_the_words_the_variables_and_the_hash(tmp_path):
    from dataclasses import replace

    from glmverify.standin.profile import GLM_52

    other = replace(GLM_52, name="x-1", thinking_variable="thinking", effort_variable="effort", default="high",
                    levels=(("ultra", "U"), ("high", "H")), fallback="ultra", system_line="<effort={level}>")
    assert standin_build.build_hash(profile=other) != standin_build.build_hash()
    tok = transformers.AutoTokenizer.from_pretrained(str(standin_build.build(tmp_path / "x", profile=other)))

    def render(**kw):
        return tok.apply_chat_template(user("hi"), tokenize=False, add_generation_prompt=True, **kw)

    assert render() == "[gMASK]<sop><|system|><effort=H><|user|>hi<|assistant|><think>"
    assert render(effort="ultra").startswith("[gMASK]<sop><|system|><effort=U>")
    assert render(effort="nope", reasoning_effort="high").startswith("[gMASK]<sop><|system|><effort=U>")
    assert render(thinking=False) == "[gMASK]<sop><|user|>hi<|assistant|></think>"
    assert render(enable_thinking=False).endswith("<think>")  # not this profile's switch
    p = script.parse_prompt(render(), other)
    assert (p.effort, p.effort_rank) == ("H", 1)
    assert script.parse_prompt(render(effort="ultra"), other).effort_rank == 0
    assert "<effort" not in script.respond(render(), profile=other)


def test_scripter_reads_the_profile_of_its_model_dir(tmp_path, monkeypatch):
    from dataclasses import replace

    from glmverify.standin.forcing import Scripter
    from glmverify.standin.profile import GLM_52

    monkeypatch.setenv(script.SAMPLING_ENV, "off")
    three = replace(GLM_52, name="three", levels=(("max", "Max"), ("high", "High"), ("low", "Low")))
    s = Scripter(str(standin_build.build(tmp_path / "three", profile=three)))
    assert s.profile == three
    prompt = "[gMASK]<sop><|system|>Reasoning Effort: {}<|user|>Why is the sky blue?<|assistant|><think>"
    lengths = [len(s.plan(s.tokenizer.encode(prompt.format(w)).ids, _constraints()).tokens) for w in ("Max", "High", "Low")]
    assert lengths[0] > lengths[1] > lengths[2], lengths


def _constraints():
    from glmverify.standin.forcing import Constraints

    return Constraints()


def test_schema_values_accept_what_jsonschema_cannot_check():
    from glmverify.standin.schema_values import valid

    assert valid(3, {"type": "integer", "minimum": 2}, None) and not valid(1, {"type": "integer", "minimum": 2}, None)
    assert valid("x", {"$ref": "https://example.com/remote.json"}, None)  # unresolvable: unconstrained
    assert not valid("x", False, None) and valid("x", True, None)


def test_glm52_build_template_is_the_package_template():
    """The fault catalogue edits the package's template as GLM-5.2's: the GLM-5.2 rendering is it."""
    assert standin_build.render_template() == standin_build.TEMPLATE_PATH.read_text()
    from dataclasses import replace

    from glmverify.standin.profile import GLM_52

    three = replace(GLM_52, name="t", levels=(("max", "Max"), ("high", "High"), ("low", "Low")))
    assert "'Low' if (reasoning_effort is defined and reasoning_effort == 'low')" in standin_build.profile_block(three)
