"""Run the GLM-5.2 catalogue through SGLang's own parsers. Runs INSIDE an SGLang venv.

    python sglang_runner.py --catalogue F --reasoning-parser glm45 --tool-parser glm47 \
        --chunkings 50 --seed 0

Prints one JSON report on stdout. Imports only the stdlib, sglang and the sibling
``catalogue.py`` with its stdlib siblings (loaded as a package of their own, so no package
``__init__`` runs in this venv).

The order of operations copies ``sglang/srt/entrypoints/openai/serving_chat.py``
(checked against 0.5.23):

* non-stream (``_build_chat_response``): ``ReasoningParser(model_type, stream_reasoning=False,
  force_reasoning=<thinking>)``.parse_non_stream(text); then, when tool parsing is active
  (tools offered and tool_choice != "none"), ``_process_tool_calls``:
  ``FunctionCallParser(tools, parser)``; if ``has_tool_call(text)``: ``parse_non_stream``;
  a marker with no parsed call leaves the remaining text and no tool_calls.
  ``content = text or ""``, ``reasoning_content = reasoning or None``.
* stream (``_generate_stream_content``): per delta, the reasoning parser's
  ``parse_stream_chunk`` (plus ``parse_stream_end`` on the finishing delta) gives reasoning
  and normal text; the normal text goes through ``FunctionCallParser.parse_stream_chunk``
  (plus ``parse_stream_end`` when finishing) when tool parsing is active, else it is content.
  A call item with a name opens the call (id + name); the others carry argument
  fragments. On the finishing delta ``_check_for_unstreamed_tool_args`` may add the rest
  of the last call's arguments.

``force_reasoning`` is what ``_get_reasoning_from_request`` gives GLM (``reasoning_default =
"enable_thinking"``): true unless the request sets ``enable_thinking: false``, i.e. the case's
``thinking`` flag.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Running a file puts its directory first on sys.path; our module names must not shadow
# anything the engine imports.
if sys.path and Path(sys.path[0] or ".").resolve() == HERE:
    sys.path.pop(0)


def _load_catalogue_module():
    # catalogue.py and its stdlib siblings as a package of their own: no glmverify __init__ runs here
    pkg = types.ModuleType("glmverify_parsers_catalogue")
    pkg.__path__ = [str(HERE)]
    sys.modules[pkg.__name__] = pkg
    return importlib.import_module(f"{pkg.__name__}.catalogue")


cat = _load_catalogue_module()


def _quiet_logging() -> None:
    import logging

    logging.disable(logging.CRITICAL)


class SGLangHarness:
    def __init__(self, reasoning_parser: str, tool_parser: str):
        from sglang.srt.entrypoints.openai.protocol import Function, Tool
        from sglang.srt.function_call.function_call_parser import FunctionCallParser
        from sglang.srt.parser.reasoning_parser import ReasoningParser

        self.Tool, self.Function = Tool, Function
        self.FunctionCallParser = FunctionCallParser
        self.ReasoningParser = ReasoningParser
        self.reasoning_parser = reasoning_parser
        self.tool_parser = tool_parser
        if reasoning_parser and reasoning_parser not in ReasoningParser.DetectorMap:
            raise SystemExit(f"unknown sglang reasoning parser {reasoning_parser!r}")
        if tool_parser and tool_parser not in FunctionCallParser.ToolCallParserEnum:
            raise SystemExit(f"unknown sglang tool parser {tool_parser!r}")

    # -- request-level helpers ---------------------------------------------------------

    def tools(self, case) -> list:
        return [
            self.Tool(type="function", function=self.Function(
                name=t["function"]["name"],
                description=t["function"].get("description"),
                parameters=t["function"].get("parameters", {"type": "object", "properties": {}}),
            ))
            for t in case.tools
        ]

    def tool_parsing_active(self, tools: list) -> bool:
        # serving_chat._tool_call_parsing_active with tool_choice "auto"
        if not self.tool_parser:
            return False
        if not tools:
            detector = self.FunctionCallParser.ToolCallParserEnum[self.tool_parser]
            pwt = getattr(detector, "parses_without_tools", None)
            return bool(pwt()) if callable(pwt) else False
        return True

    def new_reasoning_parser(self, case, stream: bool):
        return self.ReasoningParser(
            model_type=self.reasoning_parser,
            stream_reasoning=stream,
            force_reasoning=case.thinking,
        )

    # -- non-stream ---------------------------------------------------------------------

    def nonstream(self, case) -> dict:
        text = case.raw
        reasoning = None
        if self.reasoning_parser:
            reasoning, text = self.new_reasoning_parser(case, stream=False).parse_non_stream(text)
        tools = self.tools(case)
        calls: list = []
        if self.tool_parsing_active(tools):
            parser = self.FunctionCallParser(tools=tools, tool_call_parser=self.tool_parser)
            if parser.has_tool_call(text):
                text, items = parser.parse_non_stream(text)
                calls = [{"name": it.name, "arguments": it.parameters} for it in items]
        return {"reasoning": reasoning or None, "content": text or "", "tool_calls": calls}

    # -- stream -------------------------------------------------------------------------

    def stream(self, case, chunks: list[str]) -> dict:
        asm = cat.StreamAssembler()
        tools = self.tools(case)
        rparser = self.new_reasoning_parser(case, stream=True) if self.reasoning_parser else None
        active = self.tool_parsing_active(tools)
        fparser = self.FunctionCallParser(tools=tools, tool_call_parser=self.tool_parser) if active else None
        call_ids: dict[int, str] = {}
        for k, delta in enumerate(chunks):
            finishing = k == len(chunks) - 1
            if rparser is not None:
                r_text, delta = rparser.parse_stream_chunk(delta)
                if finishing:
                    end_r, end_n = rparser.parse_stream_end()
                    if end_r:
                        r_text = (r_text or "") + end_r
                    if end_n:
                        delta = (delta or "") + end_n
                asm.add_reasoning(r_text)
            delta = delta or ""
            if fparser is not None:
                normal, items = fparser.parse_stream_chunk(delta)
                if finishing:
                    end_text, end_items = fparser.parse_stream_end()
                    normal = (normal or "") + end_text
                    items = list(items) + list(end_items)
                asm.add_content(normal)
                for it in items:
                    if it.name:
                        cid = f"call_{it.tool_index}_{len(call_ids)}"
                        call_ids[it.tool_index] = cid
                        asm.add_tool_delta(it.tool_index, id=cid, name=it.name, arguments=it.parameters)
                    else:
                        asm.add_tool_delta(it.tool_index, arguments=it.parameters)
                if finishing:
                    rest = self._unstreamed_tool_args(fparser)
                    if rest:
                        asm.add_tool_delta(rest[0], arguments=rest[1])
            else:
                asm.add_content(delta)
        return asm.message()

    @staticmethod
    def _unstreamed_tool_args(parser):
        """serving_chat._check_for_unstreamed_tool_args: (index, remaining) or None."""
        detector = parser.detector if hasattr(parser, "detector") else parser
        prev = getattr(detector, "prev_tool_call_arr", None)
        streamed = getattr(detector, "streamed_args_for_tool", None)
        if not prev or not streamed:
            return None
        idx = len(prev) - 1
        if idx < 0 or idx >= len(streamed):
            return None
        expected = prev[idx].get("arguments", {})
        expected = expected if isinstance(expected, str) else json.dumps(expected, ensure_ascii=False)
        actual = streamed[idx]
        remaining = expected[len(actual):] if expected.startswith(actual) else ""
        return (idx, remaining) if remaining else None


def main(argv: list[str] | None = None) -> int:
    args = cat.runner_args(argv, "SGLang")
    _quiet_logging()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import importlib.metadata as md

    cases = cat.select_cases(cat.load_catalogue(args.catalogue), args.only)
    h = SGLangHarness(args.reasoning_parser, args.tool_parser)
    markers = () if args.split_markers else cat.GLM_MARKERS
    results = []
    for case in cases:
        try:
            results.append(cat.judge_nonstream(case, h.nonstream(case)))
        except Exception as exc:  # a parser crash is a result, not a runner failure
            results.append(cat.error_result(case.id, "nonstream", 1, exc))
        chunk_lists = cat.chunkings(case.raw, args.chunkings, f"{args.seed}/{case.id}", markers)
        try:
            messages = [h.stream(case, chunks) for chunks in chunk_lists]
            results.append(cat.judge_stream(case, messages, chunk_lists))
        except Exception as exc:
            results.append(cat.error_result(case.id, "stream", len(chunk_lists), exc))
    report = {
        "engine": "sglang",
        "version": md.version("sglang"),
        "reasoning_parser": args.reasoning_parser,
        "tool_parser": args.tool_parser,
        "seed": args.seed,
        "split_markers": bool(args.split_markers),
        "cases": results,
    }
    json.dump(report, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
