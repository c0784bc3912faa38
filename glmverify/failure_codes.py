"""The failure codes: what each stable code a failed check carries means, one line each.

A failed check records its ``code`` and ``fields`` next to its detail (``checks.Failure``; the
cell's ``checks[].code`` / ``checks[].fields`` in matrix.json). A code is ``area.what``: the area
is the feature or the layer that saw it (``tool_call``, ``reasoning``, ``effort``, ``thinking_off``,
``context``, ``mtp``, ``messages``, ``serving_performance`` for the suites; ``stream``, ``body``, ``calls``, ``finish``,
``usage``, ``content``, ``text`` for the engine invariants every answer is held to, ``invariants``
and ``ledger``). Codes are stable: a reworded message keeps its code, a new kind of failure gets a
new code here first (``tests/unit/test_failure_codes.py`` fails on a code used in ``suites/``, in
the invariants or in the fault catalogue's signatures that is not listed). The fault catalogue
(``fixtures/faults.yaml``) matches causes by these codes and fields (``diagnosis``).

Imports nothing: any layer may read it.
"""
from __future__ import annotations

CODES: dict[str, str] = {
    # ---- any check ---------------------------------------------------------------------------
    "request.failed": "a request got no answer (transport error, timeout, HTTP error); fields: error",
    "serving.error_rate": "more requests unserved (timeouts, transport errors, 5xx) than the serving-error bar allows",
    "harness.no_input_reasoning_field": "the engine's adapter declares no field to send reasoning back in (a harness gap)",
    "harness.haystack_sizing": "sizing the long-context haystack took too many tokenizer calls (a harness limit)",
    "deployment.differs_from_row": "the attached deployment reports a configuration other than the row's (checkpoint, "
                                   "quantization, speculation, window ...)",
    "deployment.served_model_missing": "the endpoint does not serve the row's model (the models it serves are listed)",
    "engine.startup_failed": "the engine did not start (its log is in the detail)",
    # ---- accuracy_smoke ----------------------------------------------------------------------
    "accuracy.below_bar": "GSM8K accuracy confidently below the mode's absolute bar (the profile's expected "
                          "accuracy less its tolerance; thinking on and off apart)",
    "accuracy.lost_against_baseline": "paired on the same seeded questions, accuracy confidently lower than the "
                                      "baseline's (McNemar on the discordant pairs)",
    "accuracy.drift": "accuracy of the run's late windows confidently below its early windows (a decay over the run)",
    "accuracy.batch_dependent": "the same seeded questions answered worse (or differently, on a deterministic row) at "
                                "full concurrency than one at a time",
    "accuracy.baseline_unusable": "the baseline named for the row cannot be used (missing, unreadable or another "
                                  "question set)",
    "accuracy.speculation_off": "the row claims MTP but the engine was seen running without speculative decoding",
    "accuracy.speculation_unobserved": "whether the engine speculates could not be observed on this endpoint "
                                       "(undecided, never failed)",
    # ---- degenerate answers (glmverify.degeneration), decided per cell and per row ---------------
    "degeneration.rate_above_bar": "the share of degenerate answers (loops, runs to max_tokens, empty after "
                                   "reasoning) is confidently above its bar; fields: scope, degenerate, counted, by_code",
    # ---- reasoning_split ---------------------------------------------------------------------
    "reasoning.missing": "thinking on, but no reasoning field; fields: think_end_in_content (the parser left "
                         "'</think>' in content), content_chars",
    "reasoning.content_empty": "thinking on, the whole answer landed in reasoning and content is empty",
    "reasoning.tag_in_content": "a raw <think>/</think> tag left in content; fields: tag",
    "reasoning.tag_in_reasoning": "a raw <think>/</think> tag left in the reasoning field; fields: tag",
    "reasoning.default_not_thinking": "a bare request (no chat_template_kwargs) does not split while the same prompt "
                                      "with thinking on explicitly does: the default is not thinking on",
    "reasoning.finish_reason": "a complete answer ended with another finish_reason than 'stop'; fields: got, mode",
    "reasoning.field_name_varies": "reasoning came under different field names across requests",
    "reasoning.sent_back_dropped": "earlier reasoning sent back under a field name renders no more prompt tokens than "
                                   "without it (the engine drops it); fields: dropped",
    "reasoning.sent_back_differs": "earlier reasoning renders differently depending on the field name it is sent in",
    "stream.seeded_text_differs": "with the same seed, the streamed text differs from the non-streamed (lost or "
                                  "duplicated deltas); fields: field, at",
    "usage.prompt_tokens_unusable": "usage.prompt_tokens missing or not a positive integer",
    "usage.completion_tokens_unusable": "usage.completion_tokens missing or not usable",
    # ---- non_think ---------------------------------------------------------------------------
    "thinking_off.reasoning_present": "thinking off, but the answer has reasoning",
    "thinking_off.content_empty": "thinking off, but content is empty",
    "thinking_off.tokens_not_lower": "thinking off does not generate fewer tokens than thinking on (decided as a ratio)",
    "thinking_off.tool_call_missing": "thinking off, no parsed tool call in any attempt; fields: markup_in_content",
    "thinking_off.wrong_tool": "thinking off, the parsed call names another tool than asked",
    "thinking_off.finish_reason": "thinking off, a tool-call answer ended with another finish_reason than 'tool_calls'",
    "thinking_off.wrong_variable_obeyed": "a variable that is not the model's thinking switch turned thinking off",
    # ---- effort_levels -----------------------------------------------------------------------
    "effort.line_missing": "the rendered prompt lacks the effort line of the requested level; fields: any_line "
                           "(some effort line rendered at all), value, level",
    "effort.line_wrong": "the rendered prompt carries another level's effort line; fields: value, line",
    "effort.line_with_thinking_off": "an effort line is rendered although thinking is off",
    "effort.fall_through_prompt_differs": "a value that falls through to the default renders another prompt than the default",
    "effort.fall_through_differs": "a value that falls through to the default reasons differently from the default "
                                   "(decided on reasoning lengths)",
    "effort.level_not_lower": "a lower effort level does not reason less than the next higher one (e.g. High as "
                              "much as Max); fields: rule",
    "effort.no_reasoning": "an effort level answered without reasoning although thinking is on",
    "effort.request_refused": "a request with an effort value got an HTTP error that is no clean rejection",
    "effort.value_rejected": "an effort value the model supports was rejected",
    # ---- tool_calls --------------------------------------------------------------------------
    "tool_call.arguments_not_json": "a call's arguments do not parse as JSON; fields: mode, call, name, tail",
    "tool_call.arguments_not_object": "a call's arguments are not a JSON object; fields: mode, empty",
    "tool_call.arguments_schema_invalid": "a call's arguments break the tool's JSON Schema; fields: validator "
                                          "(type, required, ...), path",
    "tool_call.markup_in_content": "raw tool-call markup (<tool_call> ...) left in content; fields: tag",
    "tool_call.markup_in_reasoning": "raw tool-call markup left in the reasoning field; fields: tag",
    "tool_call.missing": "a forced tool_choice (required or a named tool) got no call",
    "tool_call.ran_to_length": "generation ran to max_tokens without a tool call; fields: tool_choice",
    "tool_call.finish_reason": "finish_reason does not fit the answer (tool_calls with calls, stop without); fields: got, expected",
    "tool_call.duplicate_id": "two calls of one answer share an id",
    "tool_call.calls_rate_below_bar": "answers call a tool when expected (and not otherwise) less often than the bar",
    "tool_call.correct_rate_below_bar": "answers call the expected tools with valid arguments less often than the bar",
    "tool_call.exact_rate_below_bar": "string arguments are kept byte for byte less often than the bar",
    "tool_call.stream_differs": "a case's calls are valid one way (stream or non-stream) and not the other; fields: "
                                "broken, because (the broken side's code)",
    "tool_call.stream_rates_differ": "the behaviour rates streamed and not differ by more than sampling explains",
    "tool_call.uncut_no_call": "the uncut answer of the cut-call check made no call ending 'tool_calls'",
    "tool_call.cut_before_call": "cut at half the tokens on the uncut answer's path (same seed, its preamble), no call "
                                 "had begun (no calls, no markup): the partial call was lost",
    "tool_call.cut_undecided": "no cut answer followed its uncut twin's path in the attempts (the engine ignores "
                               "seed and the model drew other prose each time; inconclusive)",
    "tool_call.cut_not_length": "a call cut by max_tokens did not end finish_reason 'length'; fields: finish_reason",
    "tool_call.call_with_choice_none": "tool_choice none still produced a call",
    "tool_call.empty_answer": "tool_choice none produced neither content nor reasoning",
    "tool_call.result_unused": "the final turn does not use the tool results (a rate below the bar)",
    # ---- anthropic_messages ------------------------------------------------------------------
    "messages.body_not_json": "a /v1/messages response is not JSON",
    "messages.block_order": "blocks out of order (thinking, text, tool_use), or a block started, stopped or written "
                             "while another is open or after message_delta",
    "messages.markup_in_block": "a raw think or tool-call tag in a text or thinking block; fields: tag, block",
    "messages.thinking_missing": "no thinking block first; fields: types",
    "messages.thinking_empty": "the thinking block is empty",
    "messages.text_missing": "no non-empty text block",
    "messages.no_thinking_delta": "a streamed thinking block without thinking_delta",
    "messages.stop_reason": "stop_reason does not fit the answer; fields: got, expected",
    "messages.tool_markup_in_text": "raw tool-call markup in a text block; fields: tool_use_blocks, system_in_messages",
    "messages.tool_use_unknown_name": "a tool_use block names a tool that was not offered",
    "messages.tool_use_no_id": "a tool_use block has no id",
    "messages.tool_use_input_invalid": "a tool_use input breaks the tool's schema",
    "messages.tool_use_duplicate_id": "two tool_use blocks share an id",
    "messages.tool_use_rate_below_bar": "answers carry the expected tool_use blocks less often than the bar",
    "messages.system_in_messages_refused": "a system message inside messages (Claude Code's request) was refused",
    # ---- context_1m --------------------------------------------------------------------------
    "context.window_unreported": "/v1/models reports no max_model_len",
    "context.window_below_claim": "the served window is below the row's claimed context; fields: max_model_len, claimed",
    "context.haystack_short": "the haystack built is not within 2% of the window (a sizing problem)",
    "context.request_failed": "a full-window needle request failed; fields: depth, tokens, error",
    "context.needle_rate_below_bar": "needles at the window's depths are retrieved less often than the bar",
    "context.over_limit_not_4xx": "a prompt over the window did not get a clean 4xx; fields: status",
    "context.unhealthy_after_over_limit": "the engine is unhealthy after an over-limit prompt",
    "context.no_answer_after_over_limit": "the engine does not answer a small request after an over-limit prompt",
    "context.sweep_needle_lost": "the context sweep loses the needle from some size up; fields: from_tokens, passed_below",
    "context.sweep_tool_call_broken": "the sweep's /v1/messages tool call breaks from some size up; fields: from_tokens, "
                                      "passed_below, markup",
    # ---- mtp_accept_length -------------------------------------------------------------------
    "mtp.not_claimed": "the row claims no speculative decoding (draft_tokens, min_accept_length unset)",
    "mtp.unobserved": "speculation cannot be observed on this endpoint (inconclusive; fields: why)",
    "mtp.simulated": "the row simulates acceptance (benchmark mode): never verified",
    "mtp.no_spec_counters": "no speculative-decoding counters: speculation is off on a row that claims it",
    "mtp.measurement": "a measurement window had a defect (failed request, inconsistent counters); fields: codes",
    "mtp.counters_frozen": "the speculative counters did not move over the workload (frozen or stale metrics)",
    "mtp.counters_inconsistent": "per-position counters contradict the totals or each other",
    "mtp.draft_length_differs": "the engine counts another number of draft positions than the row claims",
    "mtp.accept_length_below_minimum": "the mean accept length is below the row's minimum",
    "mtp.position_collapse": "acceptance at a draft position given the previous one is below the floor",
    "mtp.too_few_windows": "too few windows measured to judge a trend",
    "mtp.accept_decay": "the accept length decays over the run (Kendall's tau and a fitted decline)",
    "mtp.last_windows_below_minimum": "the accept length of the last windows is below the row's minimum",
    "mtp.last_windows_undecided": "the last windows neither confidently above nor below the minimum (inconclusive)",
    # ---- serving_performance -----------------------------------------------------------------
    "serving_performance.requests_failed": "a benchmark window's requests did not all complete (failed or lost); "
                                           "fields: concurrency, window, completed, failed",
    "serving_performance.no_tokens_measured": "a benchmark window measured no tokens (zero throughput or TPOT); "
                                              "fields: concurrency, window",
    "serving_performance.counters_disagree": "the benchmark client's figures and the engine's own counters differ "
                                             "beyond the tolerance; fields: figures (e.g. tpot_ms, e2el_ms), windows",
    "serving_performance.no_counters": "the engine exposes no /metrics to vouch for the client's figures (SGLang: "
                                       "--enable-metrics)",
    "serving_performance.regressed_against_baseline": "TPOT (or E2E latency) or output throughput confidently worse "
                                                      "than the signed baseline beyond the effect (inconclusive: "
                                                      "noise); fields: rule, estimate",
    "serving_performance.below_guide": "TPOT or output throughput confidently worse than the guide's published "
                                       "figure beyond the effect (inconclusive: noise); fields: rule, estimate",
    "serving_performance.unvouched_windows": "no regression decision on windows the engine's counters do not vouch "
                                             "for (inconclusive); fields: levels",
    "serving_performance.no_decision": "the measurement made no regression decision and recorded no reason (a "
                                       "harness gap)",
    "serving_performance.regime_order_violated": "merged results, one build on the same hardware: low-latency TPOT "
                                                 "confidently above balanced's, or high-throughput tok/s below another "
                                                 "regime's; fields: comparison, rows, estimate, concurrency",
    "serving_performance.mtp_slower_than_twin": "speculation (MTP, ngram drafts) confidently slower for a single "
                                                "user than the row's no-speculation twin (E2E latency at concurrency "
                                                "1), or, inconclusive, not shown to be faster; fields: comparison, "
                                                "rows, estimate",
    # ---- parsers -----------------------------------------------------------------------------
    "parsers.no_cases": "the parser conformance runner returned no cases",
    "parsers.runner_error": "parser conformance cases ended in errors; fields: cases",
    # ---- engine invariants (glmverify.invariants, chat_answers, anthropic_stream): every answer
    "stream.not_sse": "a stream line is not SSE",
    "stream.malformed_json": "a stream event's data is not JSON",
    "stream.event_not_object": "a stream event is not a JSON object",
    "stream.event_shape": "a stream event has the wrong shape (choices, delta, fields of the wrong type)",
    "stream.error_event": "an error event in the stream",
    "stream.data_after_done": "data after [DONE]",
    "stream.no_done": "the stream ended without data: [DONE]",
    "stream.no_finish": "the stream ended without a finish_reason",
    "stream.unterminated": "the stream did not end within the event or time bound",
    "stream.delta_after_finish": "a delta after finish_reason",
    "stream.finish_reason_changed": "finish_reason changed within the stream",
    "stream.reasoning_after_content": "a reasoning delta after the first content delta",
    "stream.reasoning_after_call": "a reasoning delta after a tool call",
    "stream.call_header_resent": "a stream call's id or name sent twice",
    "stream.call_id_changed": "a stream call's id changed",
    "stream.call_without_index": "a stream tool-call delta without an integer index",
    "body.not_json": "a response body is not JSON",
    "body.no_choices": "a response has no choices",
    "body.no_message": "a choice has no message object",
    "body.field_type": "a response field has the wrong type",
    "body.reasoning_fields_disagree": "reasoning and reasoning_content carry different texts",
    "body.no_content": "a /v1/messages body has no content list",
    "body.block_shape": "a /v1/messages content item is not a typed block",
    "body.no_stop_reason": "a /v1/messages body has no stop_reason",
    "calls.arguments_not_string": "a call's arguments are not a JSON string",
    "calls.arguments_not_object": "a call's arguments are not a JSON object",
    "calls.type": "a call's type is not 'function'",
    "calls.empty_id": "a call has an empty id",
    "calls.empty_name": "a call has an empty name",
    "calls.empty_arguments": "a call has empty arguments",
    "calls.unknown_name": "a call names a tool that was not offered",
    "calls.header_resent": "a stream call's id/type/name re-sent in later argument chunks",
    "calls.header_with_finish": "a stream call's id/type/name re-sent in the last chunk, the one carrying finish_reason",
    "calls.index_gap": "stream tool-call indexes are not 0, 1, ... without a gap",
    "calls.duplicate_id": "call ids not unique within an answer",
    "finish.missing": "no finish_reason",
    "finish.unknown": "a finish_reason (stop_reason) outside the API's values",
    "finish.tool_calls_without_call": "finish_reason 'tool_calls' without a call",
    "finish.calls_with_stop": "calls but finish_reason 'stop' (only a forced named tool ends 'stop')",
    "finish.length_before_limit": "finish_reason 'length' before max_tokens or the window was reached",
    "finish.limit_not_length": "max_tokens reached but finish_reason is not 'length'",
    "usage.missing": "no usage in the answer",
    "usage.not_a_count": "a usage count is not a non-negative integer",
    "usage.no_prompt_tokens": "usage has no prompt_tokens",
    "usage.prompt_zero": "usage.prompt_tokens is 0",
    "usage.completion_zero": "usage.completion_tokens is 0 for an answer with output",
    "usage.total_mismatch": "total_tokens is not prompt_tokens + completion_tokens",
    "usage.reasoning_exceeds_completion": "reasoning_tokens exceed completion_tokens",
    "usage.exceeds_max_tokens": "completion_tokens exceed max_tokens",
    "content.markup": "raw think or tool-call markup in an answer's text",
    "content.special_token": "a special token of the tokenizer in an answer's text",
    "text.accounting": "the text delivered does not fit the completion tokens billed (text lost or sent twice)",
    "messages.malformed_json": "a /v1/messages stream event is not JSON",
    "messages.not_sse": "a /v1/messages stream line is not SSE",
    "messages.event_shape": "a /v1/messages event or delta has the wrong shape (no type, no string)",
    "messages.event_name": "an SSE event name differs from its data's type",
    "messages.after_stop": "an event after message_stop",
    "messages.start_not_first": "the first event is not message_start",
    "messages.unknown_event": "an unknown event type",
    "messages.start_twice": "message_start sent twice",
    "messages.block_index": "content blocks misnumbered (an index skipped or repeated)",
    "messages.block_type": "a content block of an unknown type",
    "messages.delta_twice": "message_delta sent twice",
    "messages.no_stop_reason": "no stop_reason sent (no message_delta, or one without it)",
    "messages.error_event": "an error event in a /v1/messages stream",
    "messages.delta_type": "a delta of the wrong type for its block (e.g. text_delta on a tool_use block)",
    "messages.empty": "an empty stream: no events",
    "messages.no_stop": "the stream did not end with message_stop",
    "messages.input_not_json": "a tool_use block's input_json_delta fragments are not JSON",
}


def meaning(code: str | None) -> str:
    """The one line of ``code`` (empty for an unknown or missing one)."""
    return CODES.get(code or "", "")
