"""GSM8K extraction/scoring, haystack sizing bounds, accept-length arithmetic."""
from __future__ import annotations

import pytest

from glmverify import gsm8k, haystack
from glmverify.adapters import vllm as vllm_adapter


def test_extract_and_score():
    assert gsm8k.extract("so 3+4 = 7. The answer is 1,234.") == "1234"
    assert gsm8k.extract("\\boxed{42}") == "42"
    assert gsm8k.extract("no number") is None and gsm8k.extract(None) is None
    assert gsm8k.reference_answer("blah\n#### 18") == "18"
    items = [{"id": "a", "answer": "3"}, {"id": "b", "answer": "5"}]
    s = gsm8k.score(items, ["The answer is 3.", None])
    assert s["correct"] == 1 and s["invalid_rate"] == 0.5


def test_sample_is_seeded_and_shared():
    items = [{"id": str(i), "question": "q", "answer": "1"} for i in range(100)]
    a, b = gsm8k.sample(items, 10, 7), gsm8k.sample(items, 10, 7)
    assert [x["id"] for x in a] == [x["id"] for x in b]
    assert len(gsm8k.sample(items, 0, 7)) == 100


def test_gsm8k_sha256_checked(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"question": "1+1?", "answer": "#### 2"}\n')
    assert gsm8k.load(str(p))[0]["answer"] == "2"
    with pytest.raises(ValueError, match="sha256"):
        gsm8k.load(str(p), "00" * 32)
    with pytest.raises(FileNotFoundError):
        gsm8k.load(str(tmp_path / "none.jsonl"))


def test_haystack_sizing_is_bounded_and_tight():
    calls = []

    def count(msgs):  # a deterministic tokenizer: one token per 4 chars plus template overhead
        calls.append(1)
        return 20 + len(msgs[0]["content"]) // 4
    for target in (4096, 16384, 1_048_576):
        calls.clear()
        hs = haystack.build(count, target, [(0.5, haystack.NEEDLE.format(value="x"))])
        assert hs.tokens <= target and hs.tokens >= 0.98 * target, (target, hs.tokens)
        assert hs.tokenize_calls == len(calls) <= 6
        assert "The secret passphrase is x." in hs.messages[0]["content"]
        calls.clear()
        est = haystack.build(count, target, [(0.5, haystack.NEEDLE.format(value="x"))], exact=False)
        real = count(est.messages)
        assert len(calls) == 4 and est.tokenize_calls == 3  # three small sizing calls + our check
        assert 0.98 * target <= real <= target and abs(real - est.tokens) <= 2, (target, real, est.tokens)


def test_accept_length_arithmetic():
    before = {"vllm:spec_decode_num_drafts_total{e=\"0\"}": 10, "vllm:spec_decode_num_accepted_tokens_total{e=\"0\"}": 20,
              "vllm:spec_decode_num_accepted_tokens_per_pos_total{position=\"0\"}": 8}
    after = {"vllm:spec_decode_num_drafts_total{e=\"0\"}": 110, "vllm:spec_decode_num_accepted_tokens_total{e=\"0\"}": 270,
             "vllm:spec_decode_num_accepted_tokens_per_pos_total{position=\"0\"}": 98}
    s = vllm_adapter.accept_length(before, after)
    assert s["accept_length"] == 3.5 and s["per_position"] == [0.9]
