"""window_spans on hand-made logits: the pipeline's masking, softmax and span rules, token by token."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from handler.engine.decoding import window_spans

# A window laid out like [CLS] q q [SEP] c c c c [SEP]: context tokens 4..7.
LAYOUT = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0])
CONTEXT = LAYOUT == 1
CLS = np.arange(LAYOUT.size) == 0


def softmax_over(logits: np.ndarray, keep: np.ndarray) -> np.ndarray:
    exp = np.where(keep, np.exp(logits - logits[keep].max()), 0.0)
    return exp / exp.sum()


def brute_force(
    start: np.ndarray, end: np.ndarray, context: np.ndarray, cls: np.ndarray, max_answer_len: int
) -> dict[tuple[int, int], float]:
    """Every valid (start, end) and its score, by the definition in the module docstring."""
    keep = context | cls
    p_s, p_e = softmax_over(start, keep), softmax_over(end, keep)
    ctx = np.flatnonzero(context)
    return {
        (int(s), int(e)): float(p_s[s] * p_e[e])
        for s, e in itertools.product(ctx, ctx)
        if s <= e < s + max_answer_len
    }


def spans(start: np.ndarray, end: np.ndarray, *, top_k: int = 5, max_answer_len: int = 15) -> list:
    found, _ = window_spans(start, end, CONTEXT, CLS, top_k=top_k, max_answer_len=max_answer_len)
    return found


def test_best_span_is_the_argmax_start_and_end_inside_the_context() -> None:
    start = np.zeros(9, dtype=np.float32)
    end = np.zeros(9, dtype=np.float32)
    start[5], end[6] = 5.0, 5.0
    best = spans(start, end)[0]
    assert (best.start, best.end) == (5, 6)


def test_question_and_special_tokens_never_start_or_end_a_span_even_with_top_logits() -> None:
    start = np.zeros(9, dtype=np.float32)
    end = np.zeros(9, dtype=np.float32)
    start[[0, 1, 3, 8]] = 50.0  # CLS, question, SEP, final SEP
    end[[0, 2, 3, 8]] = 50.0
    found = spans(start, end, top_k=100)
    assert found
    assert all(CONTEXT[s.start] and CONTEXT[s.end] and s.start <= s.end for s in found)


def test_masked_tokens_take_no_probability_mass_but_cls_does() -> None:
    start = np.array([3.0, 9.0, 9.0, 9.0, 1.0, 0.0, 2.0, 0.5, 9.0], dtype=np.float32)
    end = np.array([1.0, 9.0, 9.0, 9.0, 0.0, 2.0, 0.0, 1.0, 9.0], dtype=np.float32)
    found, null = window_spans(start, end, CONTEXT, CLS, top_k=100, max_answer_len=15)
    expected = brute_force(start, end, CONTEXT, CLS, 15)
    assert {(s.start, s.end): s.score for s in found} == pytest.approx(expected, rel=1e-5)
    keep = CONTEXT | CLS
    assert null == pytest.approx(softmax_over(start, keep)[0] * softmax_over(end, keep)[0], rel=1e-5)


def test_null_score_is_the_cls_start_times_cls_end_probability() -> None:
    start = np.zeros(9, dtype=np.float32)
    end = np.zeros(9, dtype=np.float32)
    start[0], end[0] = 10.0, 10.0
    _, null = window_spans(start, end, CONTEXT, CLS, top_k=1, max_answer_len=15)
    p_cls = np.exp(10.0) / (np.exp(10.0) + 4)  # CLS against 4 context tokens at logit 0
    assert null == pytest.approx(p_cls**2, rel=1e-5)


def test_without_a_cls_token_the_null_score_is_whatever_token_zero_gets() -> None:
    # Token 0 is masked (no CLS): its probability is ~0, so the null answer can never win.
    start = np.zeros(9, dtype=np.float32)
    end = np.zeros(9, dtype=np.float32)
    _, null = window_spans(start, end, CONTEXT, np.zeros(9, dtype=bool), top_k=1, max_answer_len=15)
    assert null < 1e-10


def test_max_answer_len_bounds_the_span_length_in_tokens() -> None:
    start = np.zeros(9, dtype=np.float32)
    end = np.zeros(9, dtype=np.float32)
    start[4], end[7] = 9.0, 9.0  # the favourite span is 4 tokens long
    assert (spans(start, end, max_answer_len=4)[0].start, spans(start, end, max_answer_len=4)[0].end) == (
        4,
        7,
    )
    shorter = spans(start, end, top_k=100, max_answer_len=3)
    assert shorter
    assert all(s.end - s.start < 3 for s in shorter)
    single = spans(start, end, top_k=100, max_answer_len=1)
    assert sorted((s.start, s.end) for s in single) == [(i, i) for i in range(4, 8)]


def test_top_k_larger_than_the_number_of_valid_spans_returns_every_valid_span_once() -> None:
    rng = np.random.default_rng(0)
    start, end = rng.normal(size=9).astype(np.float32), rng.normal(size=9).astype(np.float32)
    found = spans(start, end, top_k=1000)
    pairs = [(s.start, s.end) for s in found]
    assert len(pairs) == len(set(pairs)) == 4 * 5 // 2  # spans over 4 context tokens
    assert [s.score for s in found] == sorted((s.score for s in found), reverse=True)


def test_top_k_returns_the_k_best() -> None:
    rng = np.random.default_rng(1)
    start, end = rng.normal(size=9).astype(np.float32), rng.normal(size=9).astype(np.float32)
    expected = sorted(brute_force(start, end, CONTEXT, CLS, 15).values(), reverse=True)[:3]
    assert [s.score for s in spans(start, end, top_k=3)] == pytest.approx(expected, rel=1e-5)


def test_ties_go_to_the_earlier_span() -> None:
    flat = np.zeros(9, dtype=np.float32)
    found = spans(flat, flat, top_k=1000)
    assert len({s.score for s in found}) == 1
    assert [(s.start, s.end) for s in found] == sorted((s.start, s.end) for s in found)
    assert (spans(flat, flat, top_k=1)[0].start, spans(flat, flat, top_k=1)[0].end) == (4, 4)


def test_a_window_without_context_tokens_has_no_spans_but_a_null_score() -> None:
    no_context = np.zeros(9, dtype=bool)
    found, null = window_spans(
        np.zeros(9, dtype=np.float32),
        np.zeros(9, dtype=np.float32),
        no_context,
        CLS,
        top_k=3,
        max_answer_len=15,
    )
    assert found == []
    assert null == pytest.approx(1.0)  # CLS is the only unmasked token


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=3, max_value=24),
    data=st.data(),
    top_k=st.integers(min_value=1, max_value=40),
    max_answer_len=st.integers(min_value=1, max_value=30),
)
def test_matches_brute_force_on_random_logits(
    n: int, data: st.DataObject, top_k: int, max_answer_len: int
) -> None:
    logits = arrays(np.float32, n, elements=st.floats(-20, 20, width=32))
    start, end = data.draw(logits), data.draw(logits)
    # [CLS] question... [SEP] context... [SEP]: a contiguous context block of at least one token.
    lo = data.draw(st.integers(min_value=1, max_value=n - 2))
    hi = data.draw(st.integers(min_value=lo + 1, max_value=n - 1))
    context = np.zeros(n, dtype=bool)
    context[lo:hi] = True
    cls = np.arange(n) == 0

    found, null = window_spans(start, end, context, cls, top_k=top_k, max_answer_len=max_answer_len)

    expected = brute_force(start, end, context, cls, max_answer_len)
    assert len(found) == min(top_k, len(expected))
    scores = [s.score for s in found]
    assert scores == sorted(scores, reverse=True)
    assert scores == pytest.approx(sorted(expected.values(), reverse=True)[: len(found)], rel=1e-4, abs=1e-12)
    for s in found:
        assert (s.start, s.end) in expected
        assert s.score == pytest.approx(expected[(s.start, s.end)], rel=1e-4, abs=1e-12)
    assert 0.0 <= null <= 1.0
