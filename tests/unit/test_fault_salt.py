"""The bench's per-run salt (``registry.SALT_ENV``): unset, the accuracy and loop faults hit the
same questions every run (the catalogue's runs are reproducible); set, each run hits other
questions in the same share, so bench/verdicts.py's runs are separate draws, not one outcome
repeated."""
from __future__ import annotations

import hashlib
from types import SimpleNamespace

from glmverify.faultproxy import accuracy_faults as af
from glmverify.faultproxy import degeneration_faults as df
from glmverify.faultproxy.registry import SALT_ENV, selection_salt

QUESTIONS = [f"Q{i}: a farmer has {i + 3} cows. The answer is N" for i in range(4000)]


def ctx(q: str) -> SimpleNamespace:
    return SimpleNamespace(body={"messages": [{"role": "user", "content": q}]})


def hit_by_subtle_drop() -> set[str]:
    return {q for q in QUESTIONS if af._subtle_decide(ctx(q)) is not None}


def test_unset_the_catalogue_draw_is_unchanged(monkeypatch):
    monkeypatch.delenv(SALT_ENV, raising=False)
    assert selection_salt("subtle") == "subtle"
    # the draw the catalogue always made: sha256 of "subtle:<question>", first 4 bytes mod 100
    def old_draw(q: str) -> bool:
        return int.from_bytes(hashlib.sha256(f"subtle:{q}".encode()).digest()[:4], "big") % 100 < af.DROP_PERCENT
    assert hit_by_subtle_drop() == {q for q in QUESTIONS if old_draw(q)}


def test_each_salt_hits_other_questions_in_the_same_share(monkeypatch):
    draws = []
    for salt in ("1000", "1001"):
        monkeypatch.setenv(SALT_ENV, salt)
        hit = hit_by_subtle_drop()
        assert 0.035 < len(hit) / len(QUESTIONS) < 0.065
        draws.append(hit)
    monkeypatch.setenv(SALT_ENV, "1000")
    assert hit_by_subtle_drop() == draws[0]  # the same salt, the same questions
    overlap = len(draws[0] & draws[1]) / len(draws[0])
    assert overlap < 0.2  # independent draws share about 5% of their questions


def test_the_batch_fault_follows_the_salt_too(monkeypatch):
    def hit() -> set[str]:
        out = set()
        for q in QUESTIONS[:2000]:
            c = SimpleNamespace(body=ctx(q).body, state={"accuracy_in_flight": af.BATCH_K})  # one more: over k
            if af._batch_decide(c) is not None:
                out.add(q)
        return out
    monkeypatch.setenv(SALT_ENV, "a")
    a = hit()
    monkeypatch.setenv(SALT_ENV, "b")
    b = hit()
    assert a and b and a != b


def test_the_greedy_loop_draw_follows_the_salt(monkeypatch):
    bodies = [{"messages": [{"role": "user", "content": f"salted question {i}"}]} for i in range(2000)]

    def draw() -> list[bool]:
        df._seen.clear()  # the draw counts repeats of a body: start each pass afresh
        return [df.drawn(b) for b in bodies]
    monkeypatch.delenv(SALT_ENV, raising=False)
    plain = draw()
    assert draw() == plain
    monkeypatch.setenv(SALT_ENV, "7")
    salted = draw()
    assert salted != plain and abs(sum(salted) / len(bodies) - df.GREEDY_SHARE) < 0.04
