"""A planted speculation that costs more than it saves (the fault catalogue's ``perf-mtp-slow-drafter``).

vLLM #55605 measured MTP 29-41% *slower* than no speculation: drafting and verifying cost more
than the accepted tokens save. The CPU reference's speculating row (reference-ngram) drafts with
vLLM's ngram proposer, which costs nearly nothing; this proposer is that one with a drafting step
as slow as a draft model that does not fit its budget: ``DELAY_ENV`` milliseconds (default
``DEFAULT_DELAY_MS``) before every batch of drafts. The drafts themselves, and so the accept
length, are the ngram proposer's: only the price changes.

vLLM loads it by path through its ``custom_class`` speculative method (a launch fault swaps the
row's ``--speculative-config``), in the engine's own process; the harness never imports it.
The prompt-lookup window is the row's (``prompt_lookup_min``/``max``), which vLLM zeroes for a
custom class, so it is set again here.
"""
from __future__ import annotations

import os
import time

from vllm.v1.spec_decode.ngram_proposer import NgramProposer

DELAY_ENV = "GLMVERIFY_SLOW_DRAFTER_MS"
DEFAULT_DELAY_MS = 30.0
LOOKUP_MIN, LOOKUP_MAX = 2, 4   # reference-ngram's prompt_lookup_min / prompt_lookup_max


class SlowNgramProposer(NgramProposer):
    def __init__(self, vllm_config):
        self.delay_s = float(os.environ.get(DELAY_ENV, DEFAULT_DELAY_MS)) / 1000.0
        super().__init__(vllm_config)
        self.min_n, self.max_n = LOOKUP_MIN, LOOKUP_MAX

    def propose(self, *args, **kwargs):
        if args and isinstance(args[0], int):   # NgramProposer's own signature (its JIT warm-up)
            return super().propose(*args, **kwargs)
        # the custom_class call: (sampled_token_ids, num_tokens_no_spec, token_ids_cpu, slot_mappings=)
        if any(len(s) for s in args[0]):
            time.sleep(self.delay_s)
        return super().propose(self.k, *args, **kwargs)
