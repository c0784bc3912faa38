"""accuracy_smoke: GSM8K through chat completions, decided sequentially with stated error rates.

Questions come in a seeded order of the whole test set (the same for every row, so rows compare).
The answer is taken from ``content`` only (never from reasoning): an engine that leaves the answer
in the reasoning field scores it as invalid. Requests are sent as the guides send them (no
sampling fields; the profile's max_tokens), so a healthy sampling deployment still misses a few.

The decision (``policy.accuracy_rule``): verified once the accuracy is confidently at or above the
mode's bar (expected - tolerance, from the profile, thinking on and off apart), failed once it is
confidently below it; otherwise more questions are drawn (doubling from ``--accuracy-samples`` up
to ``--accuracy-max``, default the whole 1,319) and the cell ends inconclusive. Requests cut by
max_tokens, refused (4xx) or with protocol defects count as wrong and are reported apart;
requests the server did not serve (timeouts, transport errors, 5xx) are no answer to score: they
are excluded and judged by the serving-error bar (``policy.serving_decision``). The request
timeout follows the row's ``max_tokens`` and decode floor (``policy.request_timeout``).

Speculative decoding: GSM8K can collapse with MTP on while short answers look fine (vLLM #46834,
SGLang #28685: 1% with MTP against 96% without). So a row that claims MTP is decided WITH
speculative decoding on, against the model's non-speculative accuracy (the profile's bar: MTP
must not cost accuracy); the engine must be seen speculating (its observed configuration: vLLM's
``vllm:spec_decode_*`` counters, SGLang's ``speculative_algorithm``), else the check fails rather
than score a non-speculative run for a speculative row. The evidence and the failure message name
whether speculative decoding was on.

Beyond the absolute gate (issue #25; ``glmverify.accuracy_baseline`` has the design, the decisions
are ``glmverify.accuracy_decisions``'s): ``test_against_baseline`` holds the row to its baseline (its
declared twin in this run, or the recorded or signed run given with ``--accuracy-baseline``) on
the same questions sent with the same per-question seeds, McNemar on the discordant pairs against
a stated effect (``--accuracy-effect``, 3 points); a row without a baseline records its outcomes
for the next run (``--accuracy-record N`` questions) and says so (skipped: the absolute gate
alone decides). ``test_steady_over_run``
(thinking on) decides the run's early windows against its late ones and re-asks a small subset
one request at a time against the same seeded answers at full concurrency; it judges the paired
check's seeded answers (or draws ``policy.STEADY_BUDGET`` of its own when that check did not run),
and is skipped, costing nothing, in a run with neither a baseline nor ``--accuracy-record``.
"""
from __future__ import annotations

import pytest

from glmverify import accuracy_baseline as ab
from glmverify import accuracy_decisions as ad
from glmverify import gsm8k, policy
from glmverify.chat import Chat
from glmverify.checks import Failure, Inconclusive, conclude, expect
from glmverify.verdicts import DEFAULT_BETA, FAILED, Decision, run_sequential

pytestmark = pytest.mark.feature("accuracy_smoke")

INSTRUCTION = "Solve the problem. End your answer with 'The answer is N.' where N is the final number."


@pytest.fixture(scope="module")
def questions(options):
    return gsm8k.sample(gsm8k.load(options.gsm8k, options.gsm8k_sha256), 0, options.accuracy_seed, shuffle=True)


def speculation(engine) -> dict:
    """Whether the row claims MTP and whether the engine was seen speculating (None: not reported;
    ``unobserved``: why it could not be seen on this endpoint, e.g. /metrics behind a gateway)."""
    obs = (engine.evidence or {}).get("observed") or {}
    seen = obs.get("speculative")
    if seen is None and isinstance(obs.get("server_args"), dict):
        seen = bool(obs["server_args"].get("speculative_algorithm"))
    why = (obs.get("unobserved") or {}).get("speculative decoding")
    return {"claimed": bool(engine.row.expect.get("draft_tokens")), "observed": seen,
            **({"unobserved": why} if why else {})}


@pytest.mark.behaviour
@pytest.mark.parametrize("thinking", [True, False], ids=["think", "nonthink"])
def test_gsm8k(engine, chat_nonstream, questions, thinking, evidence, options):
    spec = speculation(engine)
    evidence.add(speculative_decoding=spec)
    expect(not (spec["claimed"] and spec["observed"] is False),
           f"row {engine.row.id} claims MTP but the engine runs without speculative decoding: its accuracy "
           f"must be decided with speculative decoding on", "accuracy.speculation_off", row=engine.row.id)
    if spec["claimed"] and spec["observed"] is None:
        # never decided on the claim: a speculative row's accuracy needs speculation seen on
        raise Inconclusive(f"INCONCLUSIVE: row {engine.row.id} claims MTP, but whether the engine speculates "
                           f"is unobserved ({spec.get('unobserved') or 'the server reports no speculative setting'}); "
                           "give --metrics-url (vLLM) or expose /server_info (SGLang) to decide its accuracy",
                           "accuracy.speculation_unobserved", row=engine.row.id)
    on = bool(spec["observed"])
    chat_nonstream.timeout = policy.request_timeout(engine.row, options)
    rendered = policy.rendered_prompt(engine.client.engine)
    rule = policy.accuracy_rule(engine.row, thinking, rendered, options.accuracy_samples or len(questions),
                                options.accuracy_max or len(questions))
    extra = {} if thinking else {"chat_template_kwargs": {engine.profile.thinking_variable: False}}
    tally = {"correct": 0, "wrong": 0, "invalid": 0, "truncated": 0, "request_errors": 0}
    wrong, errors, truncated, unserved = [], [], [], []
    asked: list[str] = []

    def draw(k: int):
        batch = questions[len(asked):len(asked) + k]
        asked.extend(q["id"] for q in batch)
        results = chat_nonstream.many(
            {"messages": [{"role": "user", "content": f"{q['question']}\n\n{INSTRUCTION}"}], **extra} for q in batch)
        outcomes = []
        for q, r in zip(batch, results):
            if policy.serving_error(r):
                unserved.append(f"{q['id']}: {r.error}")  # excluded: no answer to score
            elif r.error or r.problems:
                tally["request_errors"] += 1
                errors.append({"id": q["id"], "error": r.error or r.problems[:2]})
                outcomes.append(False)
            elif r.truncated:
                tally["truncated"] += 1
                truncated.append({"id": q["id"], "completion_tokens": r.completion_tokens})
                outcomes.append(False)
            else:
                got = gsm8k.extract(r.content)
                ok = got == q["answer"]
                tally["correct" if ok else ("wrong" if got is not None else "invalid")] += 1
                if not ok:
                    wrong.append({"id": q["id"], "expected": q["answer"], "got": got})
                outcomes.append(ok)
        return outcomes, len(batch)

    decision, outcomes = run_sequential(rule, draw)
    serving = policy.serving_decision(f"accuracy_smoke[{'think' if thinking else 'nonthink'}]", len(asked), unserved)
    evidence.add(speculative_decoding={**spec, "on": on, "bar": "the profile's (non-speculative) accuracy"},
                 thinking=thinking, n=decision.n, accuracy=decision.estimate, bar=rule.verify_bound,
                 **tally, first_wrong=wrong[:10], first_errors=errors[:3], first_truncated=truncated[:3],
                 seed=options.accuracy_seed, sample_ids=asked[:20],
                 max_tokens=engine.profile.max_tokens, tokens_spent=chat_nonstream.tokens_spent, example=chat_nonstream.log[0] if chat_nonstream.log else None)
    conclude(decision, serving, evidence=evidence,
             context=(f"thinking {'on' if thinking else 'off'}, speculative decoding {'on' if on else 'off'}: "
                      f"GSM8K {tally['correct']}/{decision.n} correct, "
                      f"{tally['wrong']} wrong, {tally['invalid']} without an answer in content, "
                      f"{tally['truncated']} cut by max_tokens, {tally['request_errors']} failed requests, "
                      f"{len(unserved)} not served (excluded)"
                      + (f" (first: {errors[:2]})" if errors else "") + (f"; first wrong: {wrong[:3]}" if wrong else "")),
             code="accuracy.below_bar")


# (row, mode) -> the paired check's outcomes in order of sending, for the steady check of the same run
_SEEDED: dict[tuple[str, str], list[dict]] = {}


def ask_seeded(chat: Chat, batch: list[dict], extra: dict, accuracy_seed: int) -> list[dict]:
    """Answer ``batch`` with each question's own seed (``accuracy_baseline.request_seed``): one
    outcome per question, {id, correct, got, seed, status}."""
    seeds = [ab.request_seed(accuracy_seed, q["id"]) for q in batch]
    results = chat.many({"messages": [{"role": "user", "content": f"{q['question']}\n\n{INSTRUCTION}"}],
                         "seed": seed, **extra} for q, seed in zip(batch, seeds))
    out = []
    for q, seed, r in zip(batch, seeds, results):
        status = ("unserved" if policy.serving_error(r) else "error" if (r.error or r.problems)
                  else "truncated" if r.truncated else "answered")
        got = gsm8k.extract(r.content) if status == "answered" else None
        out.append({"id": q["id"], "correct": got == q["answer"], "got": got, "seed": seed, "status": status})
    return out


def scored(outcomes: list[dict]) -> list[tuple[str, bool]]:
    return [(o["id"], o["correct"]) for o in outcomes if o["status"] != "unserved"]


@pytest.mark.behaviour
@pytest.mark.parametrize("thinking", [True, False], ids=["think", "nonthink"])
def test_against_baseline(engine, chat_nonstream, questions, thinking, evidence, options, glm_state):
    """The row against its baseline on the same seeded questions: no loss beyond the stated effect."""
    row, mode = engine.row, ("think" if thinking else "nonthink")
    twins = [r.id for r in glm_state.matrix.rows if r.expect.get("accuracy_baseline") == row.id]
    try:
        base, why = ab.resolve(row, mode, options.results_dir, options.accuracy_baseline)
    except ValueError as exc:
        raise Failure(str(exc), "accuracy.baseline_unusable") from None
    seeded_c, seeded_basis = policy.seeded_concurrency(row, options)
    chat_nonstream.timeout = policy.request_timeout(row, options)
    chat_nonstream.concurrency = seeded_c
    extra = {} if thinking else {"chat_template_kwargs": {engine.profile.thinking_variable: False}}
    outcomes: list[dict] = []

    def draw(k: int) -> list[tuple[str, bool]]:
        new = ask_seeded(chat_nonstream, list(questions[len(outcomes):len(outcomes) + k]), extra, options.accuracy_seed)
        outcomes.extend(new)
        return scored(new)

    effect, effect_basis = policy.paired_effect(row, options)
    first = options.accuracy_samples or len(questions)
    budget = options.accuracy_max or len(questions)
    decision = None
    if base is None:  # record what the next run (or a twin naming this row) will be held to
        n = options.accuracy_record or (policy.paired_budget(row) if twins else 0)
        if n:
            draw(min(n, budget))
    else:
        looks = policy.paired_looks(first, budget, len(base.scored()), policy.paired_budget(row))
        decision, _ = ad.run_paired(
            base.scored(), draw, looks, name=f"accuracy[paired:{mode}]",
            quantity=f"GSM8K accuracy lost against the baseline (thinking {'on' if thinking else 'off'}; baseline - current)",
            effect=effect, alpha=policy.alpha(row, policy.rendered_prompt(engine.client.engine)), beta=DEFAULT_BETA,
            source=base.source, basis=f"effect {effect:g}: {effect_basis}; baseline: {base.source}")
    _SEEDED[(row.id, mode)] = outcomes
    written = ab.write_outcomes(options.results_dir, row.id, mode, outcomes, run_id=options.run_id,
                                accuracy_seed=options.accuracy_seed,
                                engine_version=engine.evidence.get("engine_version")) if outcomes else None
    unserved = [f"{o['id']}: not served" for o in outcomes if o["status"] == "unserved"]
    s = scored(outcomes)
    evidence.add(thinking=thinking, baseline=base.evidence() if base else {"none": why}, effect=effect,
                 baseline_of=twins, seeded_concurrency={"concurrency": seeded_c, "basis": seeded_basis},
                 n=len(s), accuracy=round(sum(ok for _, ok in s) / len(s), 4) if s else None,
                 recorded=f"{ab.OUTCOMES_DIR}/{written.name}" if written else None, seeds="accuracy_baseline.request_seed(--accuracy-seed, id)",
                 window_accuracy=ad.windows([ok for _, ok in s]), tokens_spent=chat_nonstream.tokens_spent)
    if decision is None:
        pytest.skip(f"{why}; " + (f"recorded {len(outcomes)} seeded outcomes ({ab.OUTCOMES_DIR}/{written.name}) for the "
                                  "next run" if outcomes else "nothing recorded (--accuracy-record 0)"))
    serving = policy.serving_decision(f"accuracy_smoke[paired:{mode}]", len(outcomes), unserved)
    conclude(decision, serving, evidence=evidence, context=f"thinking {'on' if thinking else 'off'}, against {base.source}",
             code="accuracy.lost_against_baseline")


def batch_decision(row, full: list[dict], single: list[dict], alpha: float) -> Decision:
    """Concurrency 1 (the reference side) against full concurrency on the same seeded questions; on
    a deterministic row a differing answer fails on its own (numerics that depend on batch shape)."""
    by_id = {o["id"]: o for o in full}
    pairs = [(o["id"], o["correct"], by_id[o["id"]]["correct"]) for o in single
             if o["status"] != "unserved" and by_id.get(o["id"], {}).get("status", "unserved") != "unserved"]
    d = ad.paired(pairs, name="accuracy[batch]", quantity="GSM8K accuracy at concurrency 1 - at full concurrency "
                  "(same questions, same seeds)", effect=policy.BATCH_EFFECT, alpha=alpha, beta=DEFAULT_BETA, look=0,
                  looks=(max(2, len(pairs)),), source="the same questions re-asked one at a time")
    # identity is asked of answers both sides gave (a request not served on one side is the serving bar's)
    answered = [o for o in single if o["status"] == "answered" and by_id.get(o["id"], {}).get("status") == "answered"]
    differ = ad.answers_differ({o["id"]: o["got"] for o in answered}, {o["id"]: by_id[o["id"]]["got"] for o in answered})
    d.extra["answers_differ"] = differ[:ad.FIRST_IDS]
    # the one-at-a-time answers are asked after the run: worse there points at time, not batch shape
    b, c = d.extra["baseline_right_current_wrong"], d.extra["baseline_wrong_current_right"]
    d.extra["later_side_worse"] = c > b
    if row.expect.get("deterministic") and differ:
        d.status = FAILED
        d.detail = (f"row {row.id} declares seeded output reproducible, but {len(differ)} of {len(single)} seeded answers "
                    f"differ between concurrency 1 and full concurrency (first {differ[:ad.FIRST_IDS]}); {d.detail}")
    if d.status == FAILED and d.extra["later_side_worse"]:
        d.detail = (f"the answers given one at a time, asked after the run, are the worse side ({c} wrong only there, "
                    f"{b} only at full concurrency): a change over the run, not an effect of batch shape; {d.detail}")
    return d


def steady_code(d: Decision) -> str:
    """The failure code of a steady-check decision: batch shape only when the batched side is the worse."""
    if d.rule.startswith("accuracy[batch]") and not d.extra.get("later_side_worse"):
        return "accuracy.batch_dependent"
    return "accuracy.drift"


@pytest.mark.behaviour
def test_steady_over_run(engine, chat_nonstream, questions, evidence, options):
    """Thinking on: early windows against late ones, and concurrency 1 against full concurrency."""
    row = engine.row
    seeded_c, seeded_basis = policy.seeded_concurrency(row, options)
    chat_nonstream.timeout = policy.request_timeout(row, options)
    chat_nonstream.concurrency = seeded_c
    full = _SEEDED.get((row.id, "think"))
    if not full:
        if not (options.accuracy_baseline or options.accuracy_record):
            # its cost is opted into with the paired check's (make verify does): a plain run pays nothing
            pytest.skip("no seeded GSM8K run to judge: give --accuracy-baseline or --accuracy-record N "
                        "(make verify does) for the early/late windows and the concurrency-1 subset")
        full = []
    # the paired check stops at its first deciding look: top its seeded answers up to the windows' budget
    n = min(policy.STEADY_BUDGET, options.accuracy_max or len(questions))
    topped_up = max(0, n - len(full))
    if topped_up:
        full = full + ask_seeded(chat_nonstream, list(questions[len(full):n]), {}, options.accuracy_seed)
    a = policy.alpha(row, policy.rendered_prompt(engine.client.engine))
    drift = ad.drift([ok for _, ok in scored(full)], name="accuracy[drift]",
                     quantity="GSM8K accuracy of the early windows - the late windows (thinking on, order of sending)",
                     effect=policy.DRIFT_EFFECT, alpha=a, beta=DEFAULT_BETA,
                     basis=f"effect {policy.DRIFT_EFFECT:g}: a decay over the run (SGLang #23020: 94-96% first, 46-55% later)")
    decided = [drift]
    single: list[dict] = []
    if seeded_c > 1:
        subset = [q for q in questions[:min(policy.BATCH_SUBSET, len(full))]]
        one_at_a_time = Chat(engine, stream=False, concurrency=1, timeout=chat_nonstream.timeout)
        single = ask_seeded(one_at_a_time, subset, {}, options.accuracy_seed)
        batch = batch_decision(row, full, single, a)
        batch.requests = len(single)
        decided.append(batch)
        evidence.add(batch={"requests_spent": len(single), "concurrency": [1, seeded_c],
                            "tokens_spent": one_at_a_time.tokens_spent})
    else:  # the seeded answers were all given one at a time: there is no batch to compare with
        evidence.add(batch={"not decided": f"seeded requests go one at a time on row {row.id}: {seeded_basis}"})
    unserved = [f"{o['id']}: not served" for o in full + single if o["status"] == "unserved"]
    evidence.add(window_accuracy=drift.extra["windows"], window_size=drift.extra["window_size"], judged=len(full),
                 drift_requests_spent=topped_up)
    serving = policy.serving_decision("accuracy_smoke[steady]", len(full) + len(single), unserved)
    conclude(*decided, serving, evidence=evidence, context="thinking on",
             code=steady_code)
