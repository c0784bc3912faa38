"""Build the stand-in model directory: tiny random Llama weights, a byte-level GLM tokenizer, the chat template.

    python -m glmverify.standin.build OUT_DIR [--max-position N]

The directory holds ``config.json`` (``LlamaForCausalLM``, 2 layers, hidden 256, head_dim 64),
``model.safetensors`` (seeded random bfloat16 weights, the same bytes on every build),
``generation_config.json`` (GLM's end-of-turn ids), ``tokenizer.json`` and
``tokenizer_config.json`` (a ``PreTrainedTokenizerFast``), ``chat_template.jinja``,
``glmverify_standin.json`` (the profile the stand-in imitates) and a stamp file. Building is
idempotent: when the stamp in ``OUT_DIR`` matches the hash of this builder, the rendered template,
the profile and the options, nothing is written.

Profile: ``build(..., profile=P)`` renders the template's thinking switch and effort line from the
model profile ``P`` (a ``glmverify.matrix.Profile``; None = GLM-5.2): ``render_template``
replaces the template's profile block (GLM-5.2's in this package's ``chat_template.jinja``) with
``profile_block(P)``, plain Jinja conditionals. The same profile goes to
``glmverify_standin.json``, which the engine hooks read so the script ranks the rendered effort
words (``profile.py``). ``ensure_built(profile)`` keeps one directory per profile under build/.

Tokenizer: 256 byte tokens (ids 0-255 are the bytes 0x00-0xFF, GPT-2 byte-level alphabet, no
merges), so every byte of text is one token, then GLM's added tokens from id 256 on
(``ADDED_TOKENS``). Turn and framing tokens (``[gMASK]``, ``<sop>``, role tokens,
``<|endoftext|>``) are special; the reasoning and tool-call tags (``<think>``, ``<tool_call>``,
``<arg_key>`` ...) are added but *not* special, as in GLM's own tokenizer, so decoding with
``skip_special_tokens=True`` keeps them in the text where vLLM's ``glm45``/``glm47`` parsers look for
them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from .profile import CONFIG_NAME, GLM_52, StandinProfile, from_profile

HERE = Path(__file__).resolve().parent
TEMPLATE_PATH = HERE / "chat_template.jinja"

#: Default context length written to config.json (GLM-5.2's native window, 1,048,576 tokens).
DEFAULT_MAX_POSITION = 1_048_576
SEED = 52

HIDDEN_SIZE = 256
NUM_LAYERS = 2
NUM_HEADS = 4
NUM_KV_HEADS = 1
HEAD_DIM = 64
INTERMEDIATE_SIZE = 512

#: (token, special) in id order, starting at id 256.
ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("[gMASK]", True),
    ("<sop>", True),
    ("<|system|>", True),
    ("<|user|>", True),
    ("<|assistant|>", True),
    ("<|observation|>", True),
    ("<think>", False),
    ("</think>", False),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<arg_key>", False),
    ("</arg_key>", False),
    ("<arg_value>", False),
    ("</arg_value>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
)
TOKEN_IDS: dict[str, int] = {tok: 256 + i for i, (tok, _) in enumerate(ADDED_TOKENS)}
VOCAB_SIZE = 256 + len(ADDED_TOKENS)
EOS_TOKEN = "<|endoftext|>"
#: GLM stops a turn on <|endoftext|>, <|user|> (end of an answer) or <|observation|> (after tool calls).
EOS_TOKENS = ("<|endoftext|>", "<|user|>", "<|observation|>")

STAMP_NAME = "standin-stamp.json"
FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    CONFIG_NAME,
)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (the ByteLevel alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def _tokenizer_json() -> str:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    table = _bytes_to_unicode()
    vocab = {table[b]: b for b in range(256)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], fuse_unk=False, byte_fallback=False))
    # use_regex only splits words before BPE; with no merges every byte is still one token.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    for text, special in ADDED_TOKENS:
        added = AddedToken(text, single_word=False, lstrip=False, rstrip=False, normalized=False, special=special)
        if special:
            tok.add_special_tokens([added])
        else:
            tok.add_tokens([added])
    for text, _ in ADDED_TOKENS:
        if tok.token_to_id(text) != TOKEN_IDS[text]:
            raise RuntimeError(f"token {text!r} got id {tok.token_to_id(text)}, expected {TOKEN_IDS[text]}")
    return tok.to_str(pretty=True)


def _tokenizer_config(max_position: int, template: str) -> dict:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_position,
        "eos_token": EOS_TOKEN,
        "pad_token": EOS_TOKEN,
        "clean_up_tokenization_spaces": False,
        "added_tokens_decoder": {
            str(TOKEN_IDS[text]): {
                "content": text,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": special,
            }
            for text, special in ADDED_TOKENS
        },
        "chat_template": template,
    }


def _config(max_position: int) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": VOCAB_SIZE,
        "hidden_size": HIDDEN_SIZE,
        "intermediate_size": INTERMEDIATE_SIZE,
        "num_hidden_layers": NUM_LAYERS,
        "num_attention_heads": NUM_HEADS,
        "num_key_value_heads": NUM_KV_HEADS,
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "max_position_embeddings": max_position,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "bos_token_id": None,
        "eos_token_id": [TOKEN_IDS[t] for t in EOS_TOKENS],
        "pad_token_id": TOKEN_IDS[EOS_TOKEN],
        "dtype": "bfloat16",
        "torch_dtype": "bfloat16",
    }


def _generation_config() -> dict:
    return {
        "eos_token_id": [TOKEN_IDS[t] for t in EOS_TOKENS],
        "pad_token_id": TOKEN_IDS[EOS_TOKEN],
        "do_sample": True,
        "temperature": 1.0,
        "top_p": 0.95,
    }


def _weights(seed: int) -> dict:
    """Seeded random weights (float32 numpy arrays; written as bfloat16)."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def w(*shape: int) -> "np.ndarray":
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)

    q, kv = NUM_HEADS * HEAD_DIM, NUM_KV_HEADS * HEAD_DIM
    tensors = {"model.embed_tokens.weight": w(VOCAB_SIZE, HIDDEN_SIZE)}
    for i in range(NUM_LAYERS):
        p = f"model.layers.{i}."
        tensors[p + "self_attn.q_proj.weight"] = w(q, HIDDEN_SIZE)
        tensors[p + "self_attn.k_proj.weight"] = w(kv, HIDDEN_SIZE)
        tensors[p + "self_attn.v_proj.weight"] = w(kv, HIDDEN_SIZE)
        tensors[p + "self_attn.o_proj.weight"] = w(HIDDEN_SIZE, q)
        tensors[p + "mlp.gate_proj.weight"] = w(INTERMEDIATE_SIZE, HIDDEN_SIZE)
        tensors[p + "mlp.up_proj.weight"] = w(INTERMEDIATE_SIZE, HIDDEN_SIZE)
        tensors[p + "mlp.down_proj.weight"] = w(HIDDEN_SIZE, INTERMEDIATE_SIZE)
        tensors[p + "input_layernorm.weight"] = np.ones(HIDDEN_SIZE, dtype=np.float32)
        tensors[p + "post_attention_layernorm.weight"] = np.ones(HIDDEN_SIZE, dtype=np.float32)
    tensors["model.norm.weight"] = np.ones(HIDDEN_SIZE, dtype=np.float32)
    tensors["lm_head.weight"] = w(VOCAB_SIZE, HIDDEN_SIZE)
    return tensors


def _safetensors_bf16(tensors: dict) -> bytes:
    """Serialise float32 arrays as a bfloat16 safetensors file (round to nearest even).

    Written by hand (the format is an 8-byte header length, a JSON header, the raw data) because
    numpy has no bfloat16; the model's dtype is bfloat16, so vLLM loads it without casting.
    """
    import numpy as np

    header: dict = {"__metadata__": {"format": "pt"}}
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name], dtype=np.float32)
        bits = arr.view(np.uint32).astype(np.uint64)
        bf16 = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")
        data = bf16.tobytes()
        header[name] = {"dtype": "BF16", "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return len(head).to_bytes(8, "little") + head + b"".join(chunks)


PROFILE_BLOCK_BEGIN = "{#- profile block:"
PROFILE_BLOCK_END = "{#- end of the profile block -#}"


def _quoted(text: str) -> str:
    return "'" + text + "'"  # profile.py admits no quote, backslash or brace in keys and words


def profile_block(profile: StandinProfile) -> str:
    """The template's thinking switch and effort line for ``profile``, as Jinja source.

    The effort word is one conditional expression: the default's word when the variable is unset
    (only written when the default is not the fallback), each other level's word when the value
    is that level, else the fallback's. GLM-5.2 gets exactly the block this package's template holds.
    """
    tv, ev, words = profile.thinking_variable, profile.effort_variable, profile.words
    on = "true" if profile.thinking_default else "false"
    flip = f"not {tv}" if profile.thinking_default else tv
    branches = []
    if profile.default != profile.fallback:
        branches.append(f"{_quoted(words[profile.default])} if ({ev} is not defined or {ev} is none) else ")
    for key, word in profile.levels:
        if key != profile.fallback:
            branches.append(f"{_quoted(word)} if ({ev} is defined and {ev} == {_quoted(key)}) else ")
    expr = "".join(branches) + _quoted(words[profile.fallback])
    before, after = profile.line_parts()
    return (f"{{%- set ns = namespace(think_on={on}, last_user=-1) -%}}\n"
            f"{{%- if {tv} is defined and {tv} is not none and {flip} -%}}\n"
            f"{{%- set ns.think_on = {'false' if profile.thinking_default else 'true'} -%}}\n"
            "{%- endif -%}\n"
            "[gMASK]<sop>\n"
            "{%- if ns.think_on -%}\n"
            f"<|system|>{before}{{{{ {expr} }}}}{after}\n"
            "{%- endif -%}\n")


def render_template(profile: StandinProfile = GLM_52) -> str:
    """``chat_template.jinja`` with its profile block rendered for ``profile``."""
    text = TEMPLATE_PATH.read_text()
    start = text.index(PROFILE_BLOCK_BEGIN)
    start = text.index("\n", start) + 1
    end = text.index(PROFILE_BLOCK_END, start)
    return text[:start] + profile_block(profile) + text[end:]


def build_hash(max_position: int = DEFAULT_MAX_POSITION, seed: int = SEED, profile: Any | None = None) -> str:
    """Content hash of a build: this builder's source, the rendered template, the profile and the options."""
    p = from_profile(profile)
    h = hashlib.sha256()
    h.update(Path(__file__).read_bytes())
    h.update(render_template(p).encode())
    h.update(json.dumps({"max_position": max_position, "seed": seed, "profile": p.to_json()}, sort_keys=True).encode())
    return h.hexdigest()


def is_built(out_dir: str | os.PathLike, max_position: int = DEFAULT_MAX_POSITION, seed: int = SEED,
             profile: Any | None = None) -> bool:
    out = Path(out_dir)
    try:
        stamp = json.loads((out / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return False
    return stamp.get("hash") == build_hash(max_position, seed, profile) and all((out / f).is_file() for f in FILES)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; containers running as another user must read it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_bytes(obj: dict) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()


def build(out_dir: str | os.PathLike, max_position: int = DEFAULT_MAX_POSITION, seed: int = SEED,
          profile: Any | None = None) -> Path:
    """Write the stand-in model for ``profile`` (None: GLM-5.2) to ``out_dir`` and return its path.

    Does nothing when ``out_dir`` already holds a build with the same content hash.
    """
    out = Path(out_dir).resolve()
    if max_position < 1:
        raise ValueError("max_position must be positive")
    p = from_profile(profile)
    if is_built(out, max_position, seed, p):
        return out
    out.mkdir(parents=True, exist_ok=True)
    template = render_template(p)
    _write_atomic(out / "config.json", _json_bytes(_config(max_position)))
    _write_atomic(out / "generation_config.json", _json_bytes(_generation_config()))
    tensors = _weights(seed)
    _write_atomic(out / "model.safetensors", _safetensors_bf16(tensors))
    _write_atomic(out / "tokenizer.json", (_tokenizer_json() + "\n").encode())
    _write_atomic(out / "tokenizer_config.json", _json_bytes(_tokenizer_config(max_position, template)))
    _write_atomic(out / "special_tokens_map.json", _json_bytes({"eos_token": EOS_TOKEN, "pad_token": EOS_TOKEN}))
    _write_atomic(out / "chat_template.jinja", template.encode())
    _write_atomic(out / CONFIG_NAME, _json_bytes(p.to_json()))
    stamp = {"hash": build_hash(max_position, seed, p), "max_position": max_position, "seed": seed,
             "profile": p.name, "files": list(FILES)}
    _write_atomic(out / STAMP_NAME, _json_bytes(stamp))
    return out


def model_dir_for(profile: Any | None = None) -> Path:
    """build/glm-5.2-standin for GLM-5.2, build/NAME-standin for profile NAME: named like a checkpoint
    of the family, so the model root a server reports names it."""
    from ..paths import STANDIN_MODEL_DIR

    p = from_profile(profile)
    if p.name == GLM_52.name:
        return STANDIN_MODEL_DIR
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", p.name):
        raise ValueError(f"profile name {p.name!r} cannot name a directory")
    return STANDIN_MODEL_DIR.with_name(f"{p.name}-standin")


def ensure_built(profile: Any | None = None) -> Path:
    """The stand-in model serving ``profile`` (a row's profile; None: GLM-5.2), built once (idempotently)."""
    return build(model_dir_for(profile), profile=profile)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m glmverify.standin.build", description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", help="model directory to write (created if missing)")
    ap.add_argument(
        "--max-position",
        type=int,
        default=DEFAULT_MAX_POSITION,
        help=f"max_position_embeddings / model_max_length (default {DEFAULT_MAX_POSITION})",
    )
    ap.add_argument("--seed", type=int, default=SEED, help=f"weight seed (default {SEED})")
    args = ap.parse_args(argv)
    already = is_built(args.out_dir, args.max_position, args.seed)
    path = build(args.out_dir, args.max_position, args.seed)
    print(f"{'up to date' if already else 'built'}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
