"""A stand-in for the GLM-5.2 *model* (never for the engine), so a real vLLM can be verified on CPU.

Design:

* ``build`` writes a tiny Hugging Face model directory: a 2-layer ``LlamaForCausalLM`` with
  seeded random weights (head_dim 64, which vLLM's CPU backend accepts), a byte-level tokenizer
  (256 byte tokens, no merges, so one byte is one token) plus GLM's special tokens as single added
  tokens, GLM's end-of-turn ids in ``generation_config.json``, and a GLM-5.2-style chat template
  (``chat_template.jinja``) written from the documented behaviour, its thinking switch and effort
  line rendered from a model profile (``profile.py``; GLM-5.2 by default), which is also written to
  ``glmverify_standin.json`` for the hooks.
* ``script.respond`` is pure Python: given the prompt rendered by that template, it returns the raw
  text GLM-5.2 would generate (reasoning, ``</think>``, answer or compact ``<tool_call>`` blocks).
  Its parts: ``prompt`` (parsing the rendered prompt), ``reasoning`` (length by the effort level's
  rank in the profile), ``schema_values`` (arguments and JSON from JSON Schemas, checked with
  jsonschema), ``answers`` (GSM8K, the needle), ``faults`` (the fault registry).
  Like GLM-5.2 it samples (``sampling.py``): per request the reasoning length varies and a few
  GSM8K answers are wrong; under greedy decoding some reasoning falls into a repetition loop.
* ``forcing.Scripter`` is the engine-neutral hook core: for each request it decodes the prompt,
  picks scripted / sampled / greedy from the request's sampling parameters, asks
  ``script.generate`` for the output, and plans the tokens to force. ``processor.GLMStandInProcessor``
  (a vLLM v1 logits processor) and ``sglang_plugin`` (an SGLang plugin) force them token by token.

The random weights never decide anything: the engine's real code paths (chat template rendering,
scheduling, detokenisation, the ``glm45`` reasoning parser, the ``glm47`` tool parser, structured
outputs, the OpenAI and Anthropic front ends) turn the scripted raw output into responses, so the
suites test vLLM itself against GLM-5.2-shaped output.
"""
