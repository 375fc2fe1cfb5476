"""QAEngine on a fake backend: batching, answer alignment and the null answer, without a model."""

from __future__ import annotations

from collections.abc import Callable

from handler.engine import QAEngine, QAParams
from qa_tools.tiny_models import END_WORD, START_WORD

QUESTION = "Which animal?"
ANSWER = f"{START_WORD} by the river {END_WORD}"


def test_the_span_between_the_markers_is_the_answer_with_its_offsets(
    planted_engine: Callable[..., QAEngine],
) -> None:
    context = f"The lake is calm. {ANSWER} and more."
    [[best]] = planted_engine().answer([(QUESTION, context)])
    assert (best.answer, best.start) == (ANSWER, context.index(ANSWER))
    assert context[best.start : best.end] == best.answer


def test_without_markers_the_null_answer_wins_only_when_allowed(
    planted_engine: Callable[..., QAEngine],
) -> None:
    engine = planted_engine()
    [[null]] = engine.answer([(QUESTION, "The lake is calm.")], QAParams(handle_impossible_answer=True))
    [[forced]] = engine.answer([(QUESTION, "The lake is calm.")])
    assert (null.answer, null.start, null.end) == ("", 0, 0)
    assert forced.answer


def test_windows_are_sent_in_groups_of_max_batch_windows(planted_engine: Callable[..., QAEngine]) -> None:
    engine = planted_engine(max_batch_windows=3)
    context = " ".join(["the city by the lake"] * 60) + f" {ANSWER}."
    request = engine.encode([(QUESTION, context)], QAParams(max_seq_len=32, doc_stride=8))
    [[best]] = engine.predict(request)
    batches = engine.backend.batches  # type: ignore[attr-defined]
    assert request.num_windows > 7
    assert [b[0] for b in batches] == [3] * (request.num_windows // 3) + (
        [request.num_windows % 3] if request.num_windows % 3 else []
    )
    assert best.answer == ANSWER


def test_answers_come_back_in_pair_order(planted_engine: Callable[..., QAEngine]) -> None:
    pairs = [(QUESTION, "Nothing here."), (QUESTION, f"Here: {ANSWER}.")]
    first, second = planted_engine().answer(pairs, QAParams(handle_impossible_answer=True))
    assert first[0].answer == "" and second[0].answer == ANSWER


def test_batches_group_windows_of_similar_length(planted_engine: Callable[..., QAEngine]) -> None:
    """Short and long contexts interleaved: each batch is padded to a neighbour's length, not the longest."""
    long_context = " ".join(["the city by the lake"] * 40) + f" {ANSWER}."
    pairs = [
        (QUESTION, "Calm."),
        (QUESTION, long_context),
        (QUESTION, f"Here: {ANSWER}."),
        (QUESTION, long_context),
    ]
    params = QAParams(max_seq_len=64, doc_stride=16)
    grouped = planted_engine(max_batch_windows=2)
    request = grouped.encode(pairs, params)
    lengths = sorted(len(w.encoding.ids) for w in request.windows)

    answers = grouped.predict(request)

    widths = [b[1] for b in grouped.backend.batches]  # type: ignore[attr-defined]
    assert widths == [max(lengths[i : i + 2]) for i in range(0, len(lengths), 2)]  # minimal padding
    one_by_one = planted_engine(max_batch_windows=1).predict(request)
    assert [[(a.answer, a.start, a.end) for a in pair] for pair in answers] == [
        [(a.answer, a.start, a.end) for a in pair] for pair in one_by_one
    ]
    assert answers[1][0].answer == answers[2][0].answer == ANSWER
