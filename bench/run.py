"""Benchmarks against the reference engine (not timed tests): the two figures of the suites issue.

1. Harness overhead: the accuracy smoke run (GSM8K through ``Chat.many`` with parsing, evidence
   and scoring) over the same requests sent by a bare ``AsyncOpenAI`` client at the same
   concurrency. Target: at most 1.2.
2. Haystack sizing: time to build a 1,048,576-token needle prompt with the engine's own tokenizer
   (``/tokenize``), and the number of tokenize calls. Target: under 10 s.

Launches one reference engine with a 1,048,576-token window (the stand-in's KV cache is small
enough for that on CPU). Usage: ``python bench/run.py [--samples N] [--concurrency N]``.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import openai  # noqa: E402

from glmverify import gsm8k, haystack  # noqa: E402
from glmverify.chat import SDK_ARGS, Chat  # noqa: E402
from glmverify.adapters import probe  # noqa: E402
from glmverify.client import EngineClient  # noqa: E402
from glmverify.matrix import load  # noqa: E402
from glmverify.session import LiveEngine, Options, make_server  # noqa: E402

CONTEXT = 1_048_576
INSTRUCTION = "Solve the problem. End your answer with 'The answer is N.' where N is the final number."


def reference_row(context: int):
    row = load().row("reference")
    args = list(row.launch.args)
    args[args.index("--max-model-len") + 1] = str(context)
    return dataclasses.replace(row, launch=dataclasses.replace(row.launch, args=args))


async def bare(client: EngineClient, bodies: list[dict], concurrency: int) -> list[str | None]:
    oai = client.async_openai()
    sem = asyncio.Semaphore(concurrency)

    async def one(b):
        async with sem:
            known = {k: v for k, v in b.items() if k in SDK_ARGS}
            extra = {k: v for k, v in b.items() if k not in SDK_ARGS} or None
            try:
                r = await oai.chat.completions.create(**known, extra_body=extra)
            except openai.APIConnectionError as exc:
                if isinstance(exc, openai.APITimeoutError):
                    raise
                # the engine closed a pooled keep-alive connection before answering (seen under CPU
                # load): one fresh attempt, as Chat makes, so both clients do the same work
                r = await oai.chat.completions.create(**known, extra_body=extra)
            return r.choices[0].message.content
    try:
        return await asyncio.gather(*(one(b) for b in bodies))
    finally:
        await oai.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=64, help="GSM8K questions (default 64)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3, help="alternating timed runs of each client (default 3)")
    ap.add_argument("--endpoint", default=None, help="use a running reference engine instead of launching one")
    ap.add_argument("--haystack-only", action="store_true", help="only the haystack figure")
    args = ap.parse_args()

    row = reference_row(CONTEXT)
    with tempfile.TemporaryDirectory() as tmp:
        opts = Options(matrix_path=Path("matrix.yaml"), results_dir=Path(tmp), endpoint=args.endpoint)
        server = make_server(row, opts, Path(tmp) / "logs", progress=lambda m: print(m, file=sys.stderr))
        with server:
            client = probe(EngineClient(server.base_url, model=row.served_model, engine="vllm"))
            live = LiveEngine(row=row, server=server, client=client, launch_id="bench")
            sample = gsm8k.sample(gsm8k.load(), args.samples, 1234)
            reqs = [{"messages": [{"role": "user", "content": f"{q['question']}\n\n{INSTRUCTION}"}], "max_tokens": 4096}
                    for q in sample]
            # the bodies the harness sends (the profile's defaults, no sampling fields): the same work
            # both ways (a greedy bare body made the stand-in loop to max_tokens, the bare run slower)
            bodies = [Chat(live, stream=False).body(**r) for r in reqs]
            asyncio.run(bare(client, bodies[:4], 4))  # warm-up
            harness_t, bare_t = [], []
            for _ in range(0 if args.haystack_only else args.repeats):
                t0 = time.perf_counter()
                res = Chat(live, stream=False, concurrency=args.concurrency).many(reqs)
                score = gsm8k.score(sample, [r.content for r in res])
                harness_t.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                asyncio.run(bare(client, bodies, args.concurrency))
                bare_t.append(time.perf_counter() - t0)
            ratio = statistics.median(harness_t) / statistics.median(bare_t) if harness_t else float("nan")
            score = score if harness_t else {"accuracy": None}

            calls = []
            count = lambda msgs: (calls.append(1), client.tokenize(messages=msgs, add_generation_prompt=True)["count"])[1]  # noqa: E731
            t0 = time.perf_counter()
            hs = haystack.build(count, CONTEXT - 64, [(0.5, haystack.NEEDLE.format(value="bench-1"))], exact=False)
            build_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            try:  # the exact count, for the estimate's error (not part of the build)
                full = client.tokenize(messages=hs.messages, add_generation_prompt=True)["count"]
            except Exception as exc:  # noqa: BLE001 - an engine with a smaller window may refuse
                print(f"full /tokenize not available: {exc}", file=sys.stderr)
                full = hs.tokens
            check_s = time.perf_counter() - t0

    report = {
        "accuracy_smoke": {"samples": len(sample), "concurrency": args.concurrency, "accuracy": score["accuracy"],
                           "harness_s": [round(x, 2) for x in harness_t], "bare_s": [round(x, 2) for x in bare_t],
                           "ratio_median": round(ratio, 3), "target": "<= 1.2"},
        "haystack_1m": {"target_tokens": CONTEXT - 64, "tokens": hs.tokens, "seconds": round(build_s, 2),
                        "tokenize_calls": len(calls), "target": "< 10 s",
                        "verified_tokens": full, "verify_seconds": round(check_s, 2),
                        "estimate_error": round((hs.tokens - full) / full, 6)},
    }
    print(json.dumps(report, indent=1))
    print(f"accuracy smoke run / bare client: {ratio:.3f} (target <= 1.2)")
    print(f"1,048,576-token haystack: {build_s:.2f} s, {len(calls)} tokenize calls, {hs.tokens} tokens estimated, "
          f"{full} by one full /tokenize ({check_s:.1f} s, not part of the build) (target < 10 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
