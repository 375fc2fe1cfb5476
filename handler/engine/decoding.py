"""Span decoding with the classic pipeline's semantics (transformers 4.x ``select_starts_ends``).

Per window: logits of tokens outside the context are set to -10000 (CLS stays, it carries the null answer),
softmax over start and end separately, score(s, e) = p_start[s] * p_end[e] for s <= e < s + max_answer_len.
The null score is p_start[0] * p_end[0], minimised over windows. Unlike 4.x we never return an impossible span
(end before start, or starting on CLS) when fewer valid spans exist than were asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MASKED_LOGIT = np.float32(-10000.0)


@dataclass(frozen=True)
class Span:
    start: int  # token index in the window
    end: int  # inclusive
    score: float


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


def window_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    context_mask: np.ndarray,
    cls_mask: np.ndarray,
    *,
    top_k: int,
    max_answer_len: int,
) -> tuple[list[Span], float]:
    """Best spans of one window, best first, and this window's null-answer score.

    ``context_mask`` marks tokens that may be part of an answer; ``cls_mask`` marks CLS tokens, which take
    part in the softmax (as in the pipeline) but never in a span.
    """
    keep = context_mask | cls_mask
    p_start = _softmax(np.where(keep, start_logits.astype(np.float32), MASKED_LOGIT))
    p_end = _softmax(np.where(keep, end_logits.astype(np.float32), MASKED_LOGIT))
    null_score = float(p_start[0] * p_end[0])

    ctx = np.flatnonzero(context_mask)
    if ctx.size == 0:
        return [], null_score
    # Context tokens are contiguous within a window: score only the context x context block.
    lo, hi = int(ctx[0]), int(ctx[-1]) + 1
    scores = np.outer(p_start[lo:hi], p_end[lo:hi])
    n = hi - lo
    valid = np.triu(np.ones((n, n), dtype=bool)) & ~np.triu(np.ones((n, n), dtype=bool), max_answer_len)
    valid &= context_mask[lo:hi, None] & context_mask[None, lo:hi]
    flat_valid = np.flatnonzero(valid)
    flat_scores = scores.ravel()[flat_valid]
    k = min(top_k, flat_valid.size)
    part = np.argpartition(-flat_scores, k - 1)[:k] if k < flat_valid.size else np.arange(flat_valid.size)
    # Best first; ties go to the earlier span, so the output is deterministic.
    order = part[np.lexsort((flat_valid[part], -flat_scores[part]))]
    starts, ends = np.divmod(flat_valid[order], n)
    spans = [
        Span(int(s) + lo, int(e) + lo, float(sc))
        for s, e, sc in zip(starts, ends, flat_scores[order], strict=True)
    ]
    return spans, null_score
