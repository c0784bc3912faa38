"""GLM-5.2 parser conformance: the engines' own parser code against a catalogue of raw outputs.

Why: most GLM-5.2 deployment bugs are in how the engine parses the model's raw text
(reasoning split, tool-call extraction, streaming). The parsers are plain Python, so they
run on a CPU machine, without the model, exactly as the engine release ships them.

Pieces
------
``fixtures/glm52_outputs.jsonl``
    The catalogue: one GLM-5.2 raw output per line (``raw``, whether the prompt ended in
    ``<think>`` (``thinking``), the ``tools`` offered, and the ``expect``-ed reasoning, content
    and tool calls). Expectations follow GLM-5.2's documented format
    (``REASONING</think>ANSWER``; ``<tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value>
    </tool_call>`` with V raw for strings and JSON text otherwise; a ``<tool_call>`` while
    reasoning ends the reasoning; no ``</think>`` means everything is reasoning), not the
    output of any parser. Where a real parser disagrees, the case fails: that is a finding.

``catalogue.py`` (stdlib only)
    Loading + validation (expected arguments are checked against the tool's JSON Schema),
    the comparator (all diffs in field order; the first is the report's ``first_diff``;
    whitespace around reasoning/content and ``""`` vs ``null`` are normalised, argument
    strings are not), the stream reassembler (id/name once per call, argument fragments
    concatenated), and the seeded chunkers (``#0`` one token per delta, ``#1`` the whole
    output in one delta, then random 1..k-token deltas; GLM markers are single tokens and
    never split unless ``--split-markers``). Its two stdlib-only siblings: ``chunking.py``
    (GLM markers, atomising an output into tokens, the seeded chunkings) and ``jsonvalues.py``
    (JSON equality, schema errors, JSON types); ``catalogue.py`` re-exports them.

``sglang_runner.py`` / ``vllm_runner.py``
    Scripts that run INSIDE the engine's own venv (stdlib + engine + ``catalogue.py`` and its siblings). They
    drive the parsers in the order the engine's chat serving code does (reasoning parser
    first, then the tool parser on the remaining text; per-delta in streams, with the
    end-of-stream flushes) and print one JSON report::

        {"engine", "version", "reasoning_parser", "tool_parser", "cases": [
            {"id", "mode": "nonstream"|"stream", "chunkings", "outcome":
             "passed"|"failed"|"error", "first_diff": {"field", "expected", "got"}|null,
             "detail"}]}

    A stream case fails if any of its chunkings fails; ``detail`` says how many and which.
    The vLLM runner builds a small in-memory character-level tokenizer with GLM's markers as
    single tokens, because vLLM's parser engine matches ``<think>``/``<tool_call>`` by token id.

``envs.py``
    One venv per engine release under ``<repo>/.venvs/`` (``sglang-0.5.23``: ``--no-deps``
    sglang plus its parser-time dependencies, CPU torch 2.13.0); vLLM reuses the project venv
    when it holds the requested version. ``run_conformance(engine, version, ...)`` runs the
    runner there and returns the report; ``python -m glmverify.parsers ENGINE VERSION
    [--out FILE]`` prints a table.

Known findings (measured with the catalogue at seed 0, 50 chunkings)
--------------------------------------------------------------------
* SGLang 0.5.23, glm45 reasoning + glm47 tools: non-stream all pass; in streams, when one
  delta carries the end of a call and a whole further call (the final delta, as happens when
  MTP accepts several tokens at once), the later call is never emitted:
  ``Glm47MoeDetector`` keeps it in its buffer and has no end-of-stream flush.
* SGLang 0.5.23 ``glm45`` tool parser: every GLM-5.2 tool call is lost (no call, not even raw
  text in content); in streams it sometimes emits a call whose name swallows the arguments.
* vLLM 0.32.0, glm45 reasoning + glm47 tools: all pass except a literal ``</think>`` in the
  answer, which is deleted from content. ``glm45`` as tool parser resolves to the glm47 class.
"""
